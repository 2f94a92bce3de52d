use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use neutrino::agent::AgentOptions;
use neutrino::agent::config::NodeConfig;
use neutrino::api::ApiConfig;
use neutrino::api::auth::AuthStrategy;
use neutrino::bench;
use neutrino::conformance::{self, KitConfig};
use neutrino::plugins::registry::{DriversConfig, Registry};
use neutrino::server::{EmbeddedAgent, ServeOptions, lock_data_dir, serve};

mod plugin_new;

/// Neutrino: OpenStack Networking API v2.0 with WebAssembly mechanism drivers.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mechanism driver components.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Serves the Networking API v2.0 and the minimal compute API (/v2.1/servers).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "NEUTRINO_LISTEN", default_value = "127.0.0.1:9696")]
        listen: std::net::SocketAddr,
        /// `postgres://...` or `sqlite://...`; default: an SQLite file in the data directory.
        #[arg(long)]
        database: Option<String>,
        /// Where the embedded database and other state live.
        #[arg(long, default_value = "/var/lib/neutrino")]
        data_dir: PathBuf,
        /// Project of requests without identity headers (noauth).
        #[arg(long, default_value = "admin")]
        default_project: String,
        /// Seconds without a heartbeat after which an agent is dead (Neutron's agent_down_time).
        #[arg(long, default_value_t = 75, value_parser = clap::value_parser!(u64).range(1..=2147483))]
        agent_down_time: u64,
        /// How many DHCP agents serve each network with a DHCP-enabled subnet, on as many
        /// hosts (Neutron's dhcp_agents_per_network): more than one keeps DHCP answering while
        /// one host is down.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
        dhcp_agents_per_network: u64,
        /// The shared agent token's file (X-Neutrino-Agent-Token), read only with
        /// --shared-agent-token; created, mode 0600, if absent. Default: <data-dir>/agent-token.
        #[arg(long)]
        agent_token_file: Option<PathBuf>,
        /// Also accept the token of --agent-token-file from any host's agent (all-in-one; off
        /// by default: each host's agent has its own credential, `neutrino agent enroll HOST`).
        #[arg(long)]
        shared_agent_token: bool,
        /// How API requests are authenticated.
        #[arg(long, value_enum, default_value_t = Auth::Noauth)]
        auth: Auth,
        /// Keystone's endpoint (e.g. http://controller:5000/v3), for --auth keystone.
        #[arg(long, required_if_eq("auth", "keystone"))]
        keystone_url: Option<String>,
        /// TOML with `[drivers]` (`mechanism_drivers`, `plugin_dir`, `cache_dir`, `[limits]`,
        /// `[drivers.drivers.<name>]`) and `[agent]` (the embedded agent's mappings, bridges,
        /// DHCP): the file `neutrino drivers --config` and `neutrino agent --config` take.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The embedded agent's host name (default: this machine's).
        #[arg(long)]
        host: Option<String>,
        /// Do not run the embedded agent for this host.
        #[arg(long)]
        no_agent: bool,
        /// Seconds a booting server may take to become ACTIVE before it goes to ERROR.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
        boot_timeout: u64,
        /// Requests of one project worked on at once while other projects have sent requests
        /// in the last 5 seconds; its others wait their turn (default: half the cores, at
        /// least 1). A project alone is not held back.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        requests_per_project: Option<u64>,
    },
    /// A node agent: wires this host's ports, serves DHCP, boots instances (needs root). Its
    /// subcommands manage the hosts' agent credentials on the server side.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Agent {
        #[command(subcommand)]
        command: Option<AgentCommand>,
        /// The server, e.g. http://controller:9696.
        #[arg(long, required = true)]
        server: Option<String>,
        /// This host's name, as ports' binding:host_id names it (default: this machine's).
        #[arg(long)]
        host: Option<String>,
        /// A file holding this host's agent token (`neutrino agent enroll HOST` printed it; or
        /// the server's shared --agent-token-file with `serve --shared-agent-token`).
        #[arg(long, visible_alias = "agent-token-file", conflicts_with = "token")]
        token_file: Option<PathBuf>,
        /// This host's agent token itself.
        #[arg(long, env = "NEUTRINO_AGENT_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Where the agent keeps its local state (local VLANs, DHCP files).
        #[arg(long, default_value = "/var/lib/neutrino-agent")]
        state_dir: PathBuf,
        /// TOML with `[drivers]` and `[agent]`: the file of `neutrino serve --config` and
        /// `neutrino drivers --config`.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Loads the configured mechanism drivers in binding order, as `serve` and `agent` do, and
    /// shows what each declares.
    Drivers {
        /// The file of `neutrino serve --config` and `neutrino agent --config`: its `[drivers]`
        /// table (`mechanism_drivers`, `plugin_dir`, `cache_dir`, `[drivers.limits]`,
        /// `[drivers.drivers.<name>]`) is read, its `[agent]` table checked.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Where `agent enroll` and `agent revoke` find the server's database.
#[derive(clap::Args)]
struct StoreArgs {
    /// `postgres://...` or `sqlite://...`: the server's --database.
    #[arg(long)]
    database: Option<String>,
    /// The server's --data-dir (its SQLite file), when it has no --database.
    #[arg(long, default_value = "/var/lib/neutrino")]
    data_dir: PathBuf,
}

impl StoreArgs {
    fn url(&self) -> String {
        self.database
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("neutrino.db").display()))
    }
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Gives HOST's agent a credential of its own and prints its token (only a digest is kept;
    /// enrolling again replaces the token). It is good for HOST's feed, statuses and reports only.
    Enroll {
        /// The host's name, as its agent reports it (`neutrino agent --host`).
        host: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revokes HOST's agent credential: its agent is refused (401) from then on.
    Revoke {
        /// The host's name.
        host: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Auth {
    /// Identity from X-Project-Id / X-Roles headers; none means the default project as admin.
    Noauth,
    /// X-Auth-Token validated by Keystone v3.
    Keystone,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The API over real HTTP: port creates, a 500-port list, binding updates, deletes.
    Api {
        /// Drive this server (e.g. http://127.0.0.1:9696) instead of starting one in-process on
        /// a fresh SQLite database.
        #[arg(long)]
        url: Option<String>,
        /// Database of the in-process server (`sqlite://...` or `postgres://...`).
        #[arg(long, conflicts_with = "url")]
        database: Option<String>,
        /// Ports created at each concurrency level.
        #[arg(long, default_value_t = 3000)]
        ports: usize,
        /// Concurrency levels (requests in flight, one connection each), comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,16")]
        concurrency: Vec<usize>,
        /// Ports on the network whose port list is timed.
        #[arg(long, default_value_t = 500)]
        list_size: usize,
        /// How many times that list is requested.
        #[arg(long, default_value_t = 200)]
        list_repeats: usize,
        /// Host the ports are bound to.
        #[arg(long, default_value = "bench-host-1")]
        host: String,
        /// With --url: a file holding --host's agent token (`neutrino agent enroll HOST` on the
        /// server side), to register an agent on --host (without it every bind ends in
        /// binding_failed).
        #[arg(long, requires = "url")]
        agent_token_file: Option<PathBuf>,
    },
    /// The API with many ports: fills a database through bulk creates and, at checkpoints,
    /// times lists, lookups, creates, the full list and the server's memory against targets.
    Scale {
        /// Drive this server instead of starting `neutrino serve` as a child process.
        #[arg(long)]
        url: Option<String>,
        /// With --url: the server's process id, to read its memory from /proc.
        #[arg(long, requires = "url")]
        server_pid: Option<u32>,
        /// `--database` of the started server (default: SQLite in a temporary directory).
        #[arg(long, conflicts_with = "url")]
        database: Option<String>,
        /// Ports in the database at the end.
        #[arg(long, default_value_t = 1_000_000)]
        ports: usize,
        /// Networks (each with a /16 IPv4 subnet) the ports are spread over.
        #[arg(long, default_value_t = 100)]
        networks: usize,
        /// Numbers of ports at which to measure, comma-separated; --ports is always one
        /// [default: 10000,100000,1000000, those up to --ports].
        #[arg(long, value_delimiter = ',')]
        checkpoints: Option<Vec<usize>>,
        /// Single port creates in flight (one connection each).
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Single creates timed at each checkpoint and on the empty database.
        #[arg(long, default_value_t = 2000)]
        creates: usize,
        /// Ports per bulk create of the fill.
        #[arg(long, default_value_t = 1000)]
        bulk_size: usize,
        /// Bulk creates in flight during the fill.
        #[arg(long, default_value_t = 4)]
        fill_concurrency: usize,
        /// Requests per timed read (lookups by id: five times as many).
        #[arg(long, default_value_t = 200)]
        repeats: usize,
    },
    /// Another project's write latency (p99) on an idle server, then while one project sends
    /// the biggest requests the limits allow; the ratio against the target (within 2x).
    Fairness {
        /// Drive this server instead of starting `neutrino serve` as a child process.
        #[arg(long)]
        url: Option<String>,
        /// `--database` of the started server (default: SQLite in a temporary directory).
        #[arg(long, conflicts_with = "url")]
        database: Option<String>,
        /// The victim's single creates in each run (the p99 of 2,000 is the 20th worst; of a
        /// few hundred, one stray scheduling delay).
        #[arg(long, default_value_t = 2000)]
        samples: usize,
        /// Attacker connections, each sending its biggest requests one after another.
        #[arg(long, default_value_t = 4)]
        attackers: usize,
        /// What the victim creates: ports or networks.
        #[arg(long, default_value = "ports")]
        victim_creates: String,
        /// Only the attacks whose name holds this (e.g. `bulk networks`), to see what each costs.
        #[arg(long)]
        attack: Option<String>,
    },
    /// The time of a network create (its segmentation id allocation) as networks grow.
    Networks {
        /// Drive this server instead of starting `neutrino serve` as a child process.
        #[arg(long)]
        url: Option<String>,
        /// `--database` of the started server (default: SQLite in a temporary directory).
        #[arg(long, conflicts_with = "url")]
        database: Option<String>,
        /// Numbers of networks at which single creates are timed, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "0,10000,50000")]
        checkpoints: Vec<usize>,
        /// Single network creates timed at each checkpoint.
        #[arg(long, default_value_t = 200)]
        creates: usize,
        /// Networks per bulk create of the fill.
        #[arg(long, default_value_t = 1000)]
        bulk_size: usize,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Runs the conformance kit against a component; exits non-zero if any case fails.
    Check {
        file: PathBuf,
        /// TOML with `[config]` (driver settings), `[grant]` (narrowing), `[fixtures]`, `[limits]`.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Writes a ready driver project into a new directory (./NAME by default): Cargo.toml
    /// (a cdylib depending on the SDK by path), src/lib.rs (a small driver the conformance kit
    /// passes), src/tests.rs (native unit tests), README.md (the commands to build, check and
    /// load it) and a sample neutrino.toml. It builds from any directory.
    New {
        /// The driver's name (letters, digits, - and _): what `mechanism_drivers` lists and the
        /// server loads from <name>.wasm.
        name: String,
        /// Where to write it; must be new or empty [default: ./NAME].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The neutrino-sdk crate to depend on; the default is the sdk/ directory of the source
        /// tree this binary was built from (its path at build time).
        #[arg(long, env = "NEUTRINO_SDK", default_value_os_t = plugin_new::built_with_sdk())]
        sdk: PathBuf,
    },
    /// Shows what a component answers for a sample port, loaded as `plugin check` loads it:
    /// its bind decision and, if it binds, its setup-network, plug-port, unplug-port and
    /// teardown-network plans. Exits non-zero unless it binds and every plan call answers.
    Plan {
        file: PathBuf,
        /// The kit's TOML (`plugin check --config`): `[config]`, `[grant]`, `[fixtures]` (the
        /// live agent's mappings), `[limits]`.
        #[arg(long)]
        config: Option<PathBuf>,
        /// A port as the API shows it (`{"port": {...}}` or the port object): its id, network,
        /// MAC, fixed IPs, binding:host_id, binding:vnic_type and binding:profile are used.
        #[arg(long)]
        port_json: Option<PathBuf>,
        /// The port's binding:host_id (the live agent's host) [default: the kit's sample host].
        #[arg(long)]
        host: Option<String>,
        /// normal, direct, ... [default: the driver's first].
        #[arg(long, value_parser = neutrino::conformance::sample::parse_vnic_type)]
        vnic_type: Option<neutrino::model::VnicType>,
        /// flat, vlan, vxlan, gre, geneve, local [default: the driver's first].
        #[arg(long, value_parser = neutrino::conformance::sample::parse_network_type)]
        network_type: Option<neutrino::model::NetworkType>,
        /// The segment's physical network [default: physnet1, which the sample agent maps].
        #[arg(long)]
        physical_network: Option<String>,
        /// The segment's VLAN id or VNI [default: the sample's].
        #[arg(long)]
        segmentation_id: Option<u32>,
        /// Print the answers as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lists a component's imports (each marked if the host refuses it) and exports, with the
    /// functions of each interface.
    Inspect {
        file: PathBuf,
        /// Print the lists as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// glibc gives threads that allocate at once arenas of their own, up to 8 per core, and memory
/// freed in one stays there. SQLite's worker thread of every pooled connection and tokio's
/// workers spread the server's heap over many of them. Two arenas: at 100,000 ports the
/// server's RSS peaked at 76 MB instead of 96 MB, at no cost seen in the create rate.
#[cfg(target_env = "gnu")]
fn limit_malloc_arenas() {
    // SAFETY: called first thing in main, before any thread is started; mallopt only
    // changes a tunable of the allocator.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(target_env = "gnu"))]
fn limit_malloc_arenas() {}

fn main() -> ExitCode {
    limit_malloc_arenas();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,neutrino::driver=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("neutrino: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `neutrino agent enroll|revoke HOST`, straight on the server's database.
fn agent_credentials(command: AgentCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match command {
            AgentCommand::Enroll { host, store } => {
                let store = neutrino::store::Store::connect(&store.url()).await?;
                let token = neutrino::api::internal::enroll(&store, &host).await?;
                println!("{token}");
                Ok(ExitCode::SUCCESS)
            }
            AgentCommand::Revoke { host, store } => {
                let store = neutrino::store::Store::connect(&store.url()).await?;
                if neutrino::api::internal::revoke(&store, &host).await? {
                    eprintln!("neutrino: revoked the agent credential of host {host:?}");
                    Ok(ExitCode::SUCCESS)
                } else {
                    eprintln!("neutrino: host {host:?} has no agent credential");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Plugin { command } => plugin(command),
        Command::Serve {
            listen,
            database,
            data_dir,
            default_project,
            agent_down_time,
            dhcp_agents_per_network,
            agent_token_file,
            shared_agent_token,
            auth,
            keystone_url,
            config,
            host,
            no_agent,
            boot_timeout,
            requests_per_project,
        } => {
            let node = match &config {
                Some(path) => NodeConfig::from_file(path)?,
                None => NodeConfig::default(),
            };
            check_plugin_dir(&node.drivers)?;
            let auth = match (auth, keystone_url) {
                (Auth::Keystone, Some(url)) => AuthStrategy::Keystone { url },
                (Auth::Keystone, None) => anyhow::bail!("--auth keystone needs --keystone-url"),
                (Auth::Noauth, url) => {
                    if url.is_some() {
                        tracing::warn!("--keystone-url is ignored without --auth keystone");
                    }
                    AuthStrategy::NoAuth
                }
            };
            let options = ServeOptions {
                listen,
                database,
                data_dir,
                agent_token_file,
                shared_agent_token,
                api: ApiConfig {
                    default_project,
                    agent_down_time: std::time::Duration::from_secs(agent_down_time),
                    dhcp_agents_per_network: dhcp_agents_per_network as usize,
                    auth,
                    drivers: node.drivers.clone(),
                    boot_timeout: std::time::Duration::from_secs(boot_timeout),
                    requests_per_project: requests_per_project
                        .map_or_else(neutrino::api::fair_share::default_limit, |n| n as usize),
                    ..ApiConfig::default()
                },
            };
            let agent = (!no_agent).then(|| EmbeddedAgent {
                host: host.unwrap_or_else(neutrino::agent::local_host_name),
                config: node,
            });
            // Before anything in the data directory is opened, for the life of the process.
            let lock = lock_data_dir(&options.data_dir)?;
            let runtime = tokio::runtime::Runtime::new()?;
            let served = runtime.block_on(serve(options, agent, &lock));
            // Blocking work the embedded agent left running is not waited for past this.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            served?;
            drop(lock);
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            command:
                BenchCommand::Api {
                    url,
                    database,
                    ports,
                    concurrency,
                    list_size,
                    list_repeats,
                    host,
                    agent_token_file,
                },
        } => {
            let report = bench::run_api(&bench::ApiBenchOptions {
                url,
                database,
                ports,
                concurrency,
                list_size,
                list_repeats,
                host,
                agent_token_file,
            })?;
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            command:
                BenchCommand::Scale {
                    url,
                    server_pid,
                    database,
                    ports,
                    networks,
                    checkpoints,
                    concurrency,
                    creates,
                    bulk_size,
                    fill_concurrency,
                    repeats,
                },
        } => {
            // Given checkpoints past --ports are refused; the default ones are dropped.
            let checkpoints = checkpoints.unwrap_or_else(|| {
                let mut c = bench::ScaleBenchOptions::default().checkpoints;
                c.retain(|c| *c <= ports);
                c
            });
            let report = bench::run_scale(&bench::ScaleBenchOptions {
                url,
                server_pid,
                database,
                ports,
                networks,
                checkpoints,
                concurrency,
                creates,
                bulk_size,
                fill_concurrency,
                repeats,
            })?;
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            command:
                BenchCommand::Fairness {
                    url,
                    database,
                    samples,
                    attackers,
                    victim_creates,
                    attack,
                },
        } => {
            let report = bench::run_fairness(&bench::FairnessOptions {
                url,
                database,
                samples,
                attackers,
                victim_creates,
                attack,
            })?;
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            command:
                BenchCommand::Networks {
                    url,
                    database,
                    checkpoints,
                    creates,
                    bulk_size,
                },
        } => {
            let report = bench::run_networks(&bench::NetworksOptions {
                url,
                database,
                checkpoints,
                creates,
                bulk_size,
            })?;
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Agent {
            command: Some(command),
            ..
        } => agent_credentials(command),
        Command::Agent {
            command: None,
            server,
            host,
            token_file,
            token,
            state_dir,
            config,
        } => {
            let token = match (token, token_file) {
                (Some(token), _) => token,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
                (None, None) => anyhow::bail!("the agent needs --token-file or --token"),
            };
            anyhow::ensure!(
                neutrino::agent::can_run_here(),
                "the agent changes the kernel's namespaces and devices: run it as root"
            );
            let server = server.context("the agent needs --server")?;
            let options = AgentOptions {
                server,
                host: host.unwrap_or_else(neutrino::agent::local_host_name),
                token,
                state_dir,
                config: match config {
                    Some(path) => NodeConfig::from_file(&path)?,
                    None => NodeConfig::default(),
                },
            };
            check_plugin_dir(&options.config.drivers)?;
            tokio::runtime::Runtime::new()?.block_on(async {
                tokio::select! {
                    done = neutrino::agent::run(options) => done,
                    _ = shutdown_signal() => Ok(()),
                }
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Drivers { config } => {
            let config: DriversConfig = match config {
                Some(path) => NodeConfig::from_file(&path)?.drivers,
                None => DriversConfig::default(),
            };
            check_plugin_dir(&config)?;
            let registry = Registry::load(&config)?;
            for (i, driver) in registry.drivers().iter().enumerate() {
                let d = driver.description();
                println!(
                    "{}. {} {} from {} (contract {})",
                    i + 1,
                    d.name,
                    d.version,
                    driver.source(),
                    driver.contract_version()
                );
                println!("   agent type: {}", d.agent_type);
                println!(
                    "   network types: {:?}, vnic types: {:?}",
                    d.network_types, d.vnic_types
                );
                println!("   vif types: {:?}", d.vif_types);
                println!("   grant: {}", serde_json::to_string(driver.grant())?);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `neutrino plugin ...`.
fn plugin(command: PluginCommand) -> anyhow::Result<ExitCode> {
    let kit = |config: Option<PathBuf>| match config {
        Some(path) => KitConfig::from_file(&path),
        None => Ok(KitConfig::default()),
    };
    let exit = |ok: bool| {
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    };
    match command {
        PluginCommand::Check { file, config, json } => {
            let report = conformance::check_file(&file, &kit(config)?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{report}");
            }
            Ok(exit(report.ok()))
        }
        PluginCommand::New { name, dir, sdk } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let written = plugin_new::new_project(&name, &dir, &sdk)?;
            println!("wrote driver {name} in {}:", dir.display());
            for file in written {
                println!("  {}", file.display());
            }
            println!("next: cd {} && cargo test && cat README.md", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Plan {
            file,
            config,
            port_json,
            host,
            vnic_type,
            network_type,
            physical_network,
            segmentation_id,
            json,
        } => {
            let port_json = match port_json {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .map_err(anyhow::Error::from)
                        .and_then(|t| Ok(serde_json::from_str(&t)?))
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
                ),
                None => None,
            };
            let sample = conformance::sample::SamplePort {
                host,
                vnic_type,
                network_type,
                segmentation_id,
                physical_network,
                port_json,
            };
            let plans = conformance::sample::plan_file(&file, &kit(config)?, &sample)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plans)?);
            } else {
                print!("{plans}");
            }
            Ok(exit(plans.ok()))
        }
        PluginCommand::Inspect { file, json } => {
            let bytes =
                std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let interface = neutrino::plugins::inspect::inspect(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&interface)?);
            } else {
                print!("{interface}");
            }
            Ok(exit(interface.imports_allowed()))
        }
    }
}

/// A `plugin_dir` that is not a directory is a mistake (a typo, a directory not made yet), not
/// a directory without drivers: every driver would silently come from the bundled ones.
fn check_plugin_dir(config: &DriversConfig) -> anyhow::Result<()> {
    if let Some(dir) = &config.plugin_dir
        && !dir.is_dir()
    {
        anyhow::bail!(
            "plugin_dir {} does not exist or is not a directory: make it (drivers there, \
             <name>.wasm, win over the bundled ones), or leave plugin_dir out",
            dir.display()
        );
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
}
