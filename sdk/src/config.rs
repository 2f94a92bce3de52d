//! Read-only operator settings for this driver.
//!
//! In a component these come from the host's `config` import. Natively (unit tests) they come
//! from [`crate::testing::with_config`].

/// The value the operator set for `key`, if any.
pub fn get(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    {
        crate::bindings::neutrino::driver::config::get(key)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::testing::native_config_get(key)
    }
}

/// The value for `key`, or `default` when the operator set none.
pub fn get_or(key: &str, default: &str) -> String {
    get(key).unwrap_or_else(|| default.to_string())
}

/// A comma-separated setting as a list (empty entries dropped).
pub fn get_list(key: &str) -> Option<Vec<String>> {
    get(key).map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
}

/// Every key the operator set.
pub fn keys() -> Vec<String> {
    #[cfg(target_arch = "wasm32")]
    {
        crate::bindings::neutrino::driver::config::keys()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::testing::native_config_keys()
    }
}
