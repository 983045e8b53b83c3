//! `fasp-lab node-standin [--port N] [--bind ADDR] [--tls] [--root DIR]`: the node API
//! stand-in as a server a person can use, with the credentials documented in the README, until
//! Ctrl-C.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use fasp_node_standin::{NODE_PASSWORD, NODE_USER, NodeStandin, StandinConfig};

/// Arguments of `fasp-lab node-standin`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The TCP port (0: any free port, printed at start).
    #[arg(long, default_value_t = 9092)]
    port: u16,
    /// The address to listen on (loopback by default: the stand-in's credentials are public).
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// Serve HTTPS with the stand-in's built-in self-signed certificate (trust it with
    /// `--cacert`, printed at start, or see the refusal without it).
    #[arg(long)]
    tls: bool,
    /// The node's files: paths of setup requests must stay inside it and download sources must
    /// exist there. Use the same folder as `ASCP_SIM_ROOT` for ascp-sim. Default: no check.
    #[arg(long)]
    root: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> ExitCode {
    let runtime = match fasp_cli::runtime("node-standin") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = runtime.block_on(serve(args));
    runtime.shutdown_background();
    code
}

async fn serve(args: Args) -> ExitCode {
    if let Some(root) = &args.root {
        if let Err(e) = std::fs::create_dir_all(root) {
            eprintln!(
                "fasp-lab node-standin: cannot create {}: {e}",
                root.display()
            );
            return ExitCode::from(1);
        }
    }
    let config = StandinConfig {
        tls: args.tls,
        docroot: args.root.clone(),
        ..StandinConfig::default()
    };
    let addr = SocketAddr::new(args.bind, args.port);
    let standin = match NodeStandin::start_on(addr, config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fasp-lab node-standin: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let url = standin.base_url();
    eprintln!("node API stand-in on {url} (Ctrl-C stops it)");
    eprintln!("  user {NODE_USER}, password {NODE_PASSWORD} (public test credentials)");
    if args.tls {
        let pem = std::env::temp_dir().join("fasp-standin-cert.pem");
        match std::fs::write(&pem, fasp_node_standin::CERTIFICATE_PEM) {
            Ok(()) => eprintln!("  its self-signed certificate: {}", pem.display()),
            Err(e) => eprintln!("  cannot write its certificate to {}: {e}", pem.display()),
        }
    }
    eprintln!("try:");
    eprintln!("  export FASP_NODE_PASSWORD={NODE_PASSWORD}");
    eprintln!("  fasp-lab node upload-setup --url {url} --user {NODE_USER} --path /incoming");
    if tokio::signal::ctrl_c().await.is_err() {
        eprintln!("fasp-lab node-standin: cannot wait for Ctrl-C");
        return ExitCode::from(1);
    }
    drop(standin);
    // Stopped on request: the documented status of an interrupted command.
    ExitCode::from(130)
}
