//! Server boots for the minimal compute API: where a server goes (`scheduler`), its ports
//! (`nics`), the boot itself (`boot`), the agents' reports on their instances
//! (`instance_status`) and the boot timeout (`build_timeout`).

pub mod boot;
pub mod build_timeout;
pub mod instance_status;
pub mod network_choice;
pub mod nics;
pub mod scheduler;
