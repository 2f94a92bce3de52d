//! `use neutrino_sdk::prelude::*;` brings in what a driver usually needs.

pub use crate::Driver;
pub use crate::names;
pub use crate::plan::PlanBuilder;
pub use crate::types::*;
pub use crate::{agents_of_type, config, json_bool, json_str, log, pair, pairs_get};
