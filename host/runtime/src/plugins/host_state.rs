//! What a driver instance sees of the host: its log, its read-only config, and sandboxed
//! stdio. One `CallState` lives in each store, that is for one instance.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
/// Longest log line kept, in bytes; a longer one is cut and says how long it was. A line
/// that says what a driver decided fits in a few hundred bytes; 8 MB lines went straight to
/// the server's log before.
pub const MAX_LOG_LINE_BYTES: usize = 1024;
/// Log lines per second one driver (all its instances together) may write, and the burst it
/// may write at once. A bind is logged in a line or two, and the server binds at most a few
/// thousand ports a second across all drivers; a driver over the rate loses lines, and the
/// next line it is allowed says how many were dropped. At most about 100 KiB/s of log per
/// driver (rate x line length).
pub const LOG_LINES_PER_SECOND: f64 = 100.0;
pub const LOG_BURST_LINES: f64 = 500.0;

/// A token bucket of log lines shared by every instance of one driver.
#[derive(Debug)]
pub struct LogBudget {
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    dropped: u64,
}

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget::new()
    }
}

impl LogBudget {
    pub fn new() -> LogBudget {
        LogBudget {
            state: Mutex::new(Bucket {
                tokens: LOG_BURST_LINES,
                last: Instant::now(),
                dropped: 0,
            }),
        }
    }

    /// Takes one line; `Some(n)` when it may be written, `n` lines having been dropped since
    /// the last one written.
    fn take(&self) -> Option<u64> {
        let mut b = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(b.last).as_secs_f64() * LOG_LINES_PER_SECOND;
        b.tokens = (b.tokens + refill).min(LOG_BURST_LINES);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Some(std::mem::take(&mut b.dropped))
        } else {
            b.dropped += 1;
            None
        }
    }
}

/// A driver's log line as the host writes it: control characters (ANSI escapes, a vertical
/// tab, newlines that would forge a log line) escaped, and cut to [`MAX_LOG_LINE_BYTES`].
pub fn log_line(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_LOG_LINE_BYTES) + 32);
    for c in message.chars() {
        if out.len() >= MAX_LOG_LINE_BYTES {
            out.push_str(&format!("... (cut, {} bytes in all)", message.len()));
            return out;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

pub struct CallState {
    driver: Arc<str>,
    config: Arc<BTreeMap<String, String>>,
    log_lines: usize,
    log_budget: Arc<LogBudget>,
    memory_cap: usize,
    pub(crate) memory_cap_hit: bool,
    wasi: WasiCtx,
    table: ResourceTable,
    output: MemoryOutputPipe,
}

impl CallState {
    pub fn new(
        driver: Arc<str>,
        config: Arc<BTreeMap<String, String>>,
        memory_cap: usize,
        log_budget: Arc<LogBudget>,
    ) -> Self {
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
            log_budget,
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
    /// A line of the driver's log, tagged with its name, escaped and cut short; past
    /// `MAX_LOG_LINES` for this instance or the driver's rate, dropped.
    pub(crate) fn driver_log(&mut self, level: tracing::Level, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return;
        }
        let Some(dropped) = self.log_budget.take() else {
            return;
        };
        let mut message = log_line(&message);
        if dropped > 0 {
            message.push_str(&format!(
                " ({dropped} earlier lines dropped: over {LOG_LINES_PER_SECOND} lines/s)"
            ));
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
