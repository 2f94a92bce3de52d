//! Logging to the host. Lines are tagged with the driver's name there.
//!
//! Natively they are collected for [`crate::testing::take_logs`].

pub use crate::bindings::neutrino::driver::log::Level;

pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        crate::bindings::neutrino::driver::log::log(level, message)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::testing::native_log(level, message)
    }
}

pub fn debug(message: &str) {
    log(Level::Debug, message)
}

pub fn info(message: &str) {
    log(Level::Info, message)
}

pub fn warn(message: &str) {
    log(Level::Warn, message)
}
