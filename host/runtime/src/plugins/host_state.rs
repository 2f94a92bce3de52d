//! What a driver instance sees of the host: its log, its read-only config, and sandboxed
//! stdio. One `CallState` lives in each store, that is for one instance.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime::{ResourceLimiter, Result};
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::adapters;

/// Most log lines and bytes of output one instance may produce; the rest is dropped, so a
/// chatty driver cannot flood the host's log.
const MAX_LOG_LINES: usize = 256;
const MAX_OUTPUT_BYTES: usize = 16 * 1024;

pub struct CallState {
    driver: Arc<str>,
    config: Arc<BTreeMap<String, String>>,
    log_lines: usize,
    memory_cap: usize,
    pub(crate) memory_cap_hit: bool,
    wasi: WasiCtx,
    table: ResourceTable,
    output: MemoryOutputPipe,
}

impl CallState {
    pub fn new(driver: Arc<str>, config: Arc<BTreeMap<String, String>>, memory_cap: usize) -> Self {
        let output = MemoryOutputPipe::new(MAX_OUTPUT_BYTES);
        // No args, no environment, no preopens, no network; stdin is empty.
        let wasi = WasiCtxBuilder::new()
            .stdout(output.clone())
            .stderr(output.clone())
            .build();
        CallState {
            driver,
            config,
            log_lines: 0,
            memory_cap,
            memory_cap_hit: false,
            wasi,
            table: ResourceTable::new(),
            output,
        }
    }

    /// What the driver wrote to stdout/stderr (a panic message, typically), trimmed.
    pub fn output(&self) -> String {
        let bytes = self.output.contents();
        let text = String::from_utf8_lossy(&bytes);
        text.trim().to_string()
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for CallState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        if desired > self.memory_cap {
            self.memory_cap_hit = true;
            wasmtime::bail!("memory cap of {} bytes reached", self.memory_cap);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// What the contract's `log` and `config` imports do, whatever the contract version.
impl CallState {
    /// A line of the driver's log, tagged with its name; past `MAX_LOG_LINES`, dropped.
    pub(crate) fn driver_log(&mut self, level: tracing::Level, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return;
        }
        let driver = &*self.driver;
        match level {
            tracing::Level::TRACE => {
                tracing::trace!(target: "neutrino::driver", driver, "{message}")
            }
            tracing::Level::DEBUG => {
                tracing::debug!(target: "neutrino::driver", driver, "{message}")
            }
            tracing::Level::INFO => tracing::info!(target: "neutrino::driver", driver, "{message}"),
            tracing::Level::WARN => tracing::warn!(target: "neutrino::driver", driver, "{message}"),
            tracing::Level::ERROR => {
                tracing::error!(target: "neutrino::driver", driver, "{message}")
            }
        }
    }

    pub(crate) fn config_get(&self, key: &str) -> Option<String> {
        self.config.get(key).cloned()
    }

    pub(crate) fn config_keys(&self) -> Vec<String> {
        self.config.keys().cloned().collect()
    }
}

struct HasTable;

impl HasData for HasTable {
    type Data<'a> = &'a mut ResourceTable;
}

/// A linker with exactly the allowed imports (see `contract::ALLOWED_IMPORTS`), ours in every
/// contract version the host runs.
pub fn linker(engine: &wasmtime::Engine) -> Result<Linker<CallState>> {
    use wasmtime_wasi::p2::bindings::{cli, sync::io};
    let mut l = Linker::new(engine);
    adapters::add_to_linker(&mut l)?;
    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<CallState, HasTable>(
        &mut l,
        |s| &mut s.table,
    )?;
    io::poll::add_to_linker::<CallState, HasTable>(&mut l, |s| &mut s.table)?;
    io::streams::add_to_linker::<CallState, HasTable>(&mut l, |s| &mut s.table)?;
    cli::environment::add_to_linker::<CallState, WasiCli>(&mut l, CallState::cli)?;
    cli::exit::add_to_linker::<CallState, WasiCli>(&mut l, CallState::cli)?;
    cli::stdin::add_to_linker::<CallState, WasiCli>(&mut l, CallState::cli)?;
    cli::stdout::add_to_linker::<CallState, WasiCli>(&mut l, CallState::cli)?;
    cli::stderr::add_to_linker::<CallState, WasiCli>(&mut l, CallState::cli)?;
    cli::terminal_input::add_to_linker::<CallState, WasiCli>(&mut l, CallState::cli)?;
    cli::terminal_output::add_to_linker::<CallState, WasiCli>(&mut l, CallState::cli)?;
    cli::terminal_stdin::add_to_linker::<CallState, WasiCli>(&mut l, CallState::cli)?;
    cli::terminal_stdout::add_to_linker::<CallState, WasiCli>(&mut l, CallState::cli)?;
    cli::terminal_stderr::add_to_linker::<CallState, WasiCli>(&mut l, CallState::cli)?;
    Ok(l)
}
