//! A ChartMuseum-API server on loopback for the demo, the same one the tests use. Prints its URL
//! on the first line of stdout, then serves until the process is killed.
//!
//!   chartmuseum [--depth N] [--context-path /PATH] [--basic-auth USER:PASS]

#[path = "../tests/support/chartmuseum.rs"]
#[allow(dead_code)]
mod chartmuseum;

use std::io::Write;

use chartmuseum::{ChartMuseum, MuseumConfig};

fn main() {
    let mut config = MuseumConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| die(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--depth" => {
                config.depth = value().parse().unwrap_or_else(|_| die("--depth: a number"))
            }
            "--context-path" => config.context_path = value(),
            "--basic-auth" => {
                let v = value();
                let (u, p) = v
                    .split_once(':')
                    .unwrap_or_else(|| die("--basic-auth USER:PASS"));
                config.basic_auth = Some((u.into(), p.into()));
            }
            other => die(&format!("unknown flag {other}")),
        }
    }
    let server = ChartMuseum::start(config);
    println!("{}", server.url(""));
    std::io::stdout().flush().unwrap();
    // The server runs on its own thread; this one only waits for the signal that ends us.
    loop {
        std::thread::park();
    }
}

fn die(msg: &str) -> ! {
    eprintln!("chartmuseum: {msg}");
    std::process::exit(2);
}
