//! `norman msg`: netaio-compatible messaging from the command line (serve, request, node, bench).
//! The interface (flags, output lines, exit codes) is a contract: tests and users script against it.

mod bench;
mod broker;
mod format;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Subcommand};
use norman::msg::packify::Value;
use norman::msg::wire::NETAIO_MAX_PAYLOAD;
use norman::msg::{
    Client, ClientConfig, Key, Layers, Message, MessageType, MulticastConfig, NetaioHmac, NetaioStreamCipher,
    Node, NodeConfig, NodeEvent, PeerConfig,
};
use zeroize::Zeroizing;

use crate::{print_line, CliResult};
use broker::Op;

#[derive(Args)]
pub struct MsgArgs {
    #[command(subcommand)]
    command: MsgCommand,
}

#[derive(Subcommand)]
enum MsgCommand {
    /// An in-memory resource broker over TCP (create/update/request/delete, pub/sub, `echo`).
    Serve(ServeArgs),
    /// Send one message to a server and print each message received, one line each.
    Request(RequestArgs),
    /// A UDP node with peer discovery that answers REQUEST_URI `echo`.
    Node(NodeArgs),
    /// Measure request/response and pipelined throughput over loopback (numbers, not pass/fail).
    Bench(BenchArgs),
}

/// The layers a message goes through, netaio's names and order: `--secret` (HMAC, outermost),
/// `--cipher-key` (SHA-256 stream cipher, inside the HMAC), or `--aead-key-file` instead of both.
/// `--inner-secret` / `--inner-cipher-key` are the per-handler (server, node) or per-call (request)
/// layers inside those, with the field names `hmac2` and `iv2` and the uri left in the clear.
#[derive(Args, Clone, Default)]
pub struct LayerArgs {
    /// Shared secret of netaio's HMAC layer.
    #[arg(long, value_name = "S")]
    secret: Option<String>,
    /// Key of netaio's SHA-256 stream cipher (inside the HMAC layer).
    #[arg(long, value_name = "K")]
    cipher_key: Option<String>,
    /// File holding the 32 raw bytes of the AEAD key (ChaCha20-Poly1305; libnorman peers only).
    #[arg(long, value_name = "F", conflicts_with_all = ["secret", "cipher_key"])]
    aead_key_file: Option<PathBuf>,
    /// Secret of an inner HMAC layer (auth field `hmac2`; nonce and ts shared with the outer one).
    #[arg(long, value_name = "S")]
    inner_secret: Option<String>,
    /// Key of an inner stream cipher (auth field `iv2`, uri not encrypted).
    #[arg(long, value_name = "K")]
    inner_cipher_key: Option<String>,
}

/// Layer keys read and checked, ready for the core. Secrets stay out of Debug and are wiped on drop.
#[derive(Default)]
pub struct LayerSpec {
    pub secret: Option<Zeroizing<Vec<u8>>>,
    pub cipher_key: Option<Zeroizing<Vec<u8>>>,
    pub aead_key: Option<Zeroizing<[u8; 32]>>,
    pub inner_secret: Option<Zeroizing<Vec<u8>>>,
    pub inner_cipher_key: Option<Zeroizing<Vec<u8>>>,
}

impl LayerSpec {
    /// The instance layers: AEAD, or netaio's stream cipher inside its HMAC (each when given).
    pub fn outer(&self) -> Layers {
        match &self.aead_key {
            Some(key) => Layers::aead(key),
            None => Layers::netaio(
                self.secret.as_deref().map(Vec::as_slice),
                self.cipher_key.as_deref().map(Vec::as_slice),
            ),
        }
    }

    /// The per-handler / per-call layers: fields `iv2` and `hmac2` (nonce and ts shared with the
    /// outer HMAC, as netaio nests them), the uri in the clear so that routing by uri still works.
    pub fn inner(&self) -> Layers {
        let mut layers = Layers::new();
        if let Some(key) = &self.inner_cipher_key {
            layers = layers.with(NetaioStreamCipher::new(key).iv_field("iv2").encrypt_uri(false));
        }
        if let Some(secret) = &self.inner_secret {
            layers = layers.with(NetaioHmac::new(secret).fields("hmac2", "nonce", "ts"));
        }
        layers
    }
}

impl LayerArgs {
    pub fn load(&self) -> CliResult<LayerSpec> {
        fn text(flag: &str, value: &Option<String>) -> CliResult<Option<Zeroizing<Vec<u8>>>> {
            match value {
                Some(v) if v.is_empty() => Err(format!("{flag} is empty")),
                Some(v) => Ok(Some(Zeroizing::new(v.as_bytes().to_vec()))),
                None => Ok(None),
            }
        }
        let aead_key = match &self.aead_key_file {
            None => None,
            Some(path) => {
                let bytes = Zeroizing::new(
                    std::fs::read(path).map_err(|e| format!("--aead-key-file {}: {e}", path.display()))?,
                );
                let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    format!(
                        "--aead-key-file {}: holds {} bytes, the key is exactly 32 raw bytes",
                        path.display(),
                        bytes.len()
                    )
                })?;
                Some(Zeroizing::new(key))
            }
        };
        Ok(LayerSpec {
            secret: text("--secret", &self.secret)?,
            cipher_key: text("--cipher-key", &self.cipher_key)?,
            aead_key,
            inner_secret: text("--inner-secret", &self.inner_secret)?,
            inner_cipher_key: text("--inner-cipher-key", &self.inner_cipher_key)?,
        })
    }
}

#[derive(Args)]
pub struct ServeArgs {
    /// HOST:PORT to listen on; port 0 picks a free one (printed on the first stdout line).
    #[arg(long)]
    listen: String,
    #[command(flatten)]
    layers: LayerArgs,
    /// Bound on the bytes the broker stores (uris + contents); past it, CREATE/UPDATE get ERROR.
    #[arg(long, default_value_t = 64 << 20)]
    max_store_bytes: usize,
    /// Bound on connected clients.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
}

#[derive(Args)]
pub struct RequestArgs {
    /// HOST:PORT of the server.
    addr: String,
    #[arg(long = "type", value_enum)]
    kind: Op,
    #[arg(long)]
    uri: String,
    /// Content as text.
    #[arg(long, conflicts_with = "content_file")]
    content: Option<String>,
    /// Content read from a file.
    #[arg(long, value_name = "F")]
    content_file: Option<PathBuf>,
    #[command(flatten)]
    layers: LayerArgs,
    /// Deadline for connecting and for the reply; a subscribe prints notifications until then.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// With --type subscribe: stop after this many notifications (fewer by the deadline: exit 1).
    #[arg(long)]
    count: Option<u64>,
}

#[derive(Args)]
pub struct NodeArgs {
    /// HOST:PORT to bind (UDP); port 0 picks one (printed on the first stdout line).
    #[arg(long)]
    listen: String,
    /// This node's peer id.
    #[arg(long)]
    id: String,
    /// Multicast group of the advertisements.
    #[arg(long, default_value = "224.0.0.1")]
    group: String,
    /// Interface multicast goes out of and the group is joined on (IP_MULTICAST_IF): an IPv4
    /// address, or an interface index for an IPv6 group. Default: 127.0.0.1 (this machine only).
    #[arg(long)]
    interface: Option<String>,
    /// Port the advertisements go to (default: the node's own, as netaio does).
    #[arg(long)]
    multicast_port: Option<u16>,
    /// Advertise every N ms.
    #[arg(long, default_value_t = 20_000)]
    every_ms: u64,
    /// Forget a peer not heard from for N ms.
    #[arg(long, default_value_t = 60_000)]
    peer_timeout_ms: u64,
    /// Stop after N ms (default: run until SIGINT/SIGTERM).
    #[arg(long)]
    duration_ms: Option<u64>,
    #[command(flatten)]
    layers: LayerArgs,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Sequential requests per layer setting.
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    /// Content size of each request, in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// One-way messages sent back to back on one connection.
    #[arg(long, default_value_t = 200_000)]
    pipelined: u64,
    /// Connected clients for the memory figure (0: skip).
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Requests of the netaio runs (it is slow: fewer keep the run short).
    #[arg(long, default_value_t = 2000)]
    netaio_requests: u64,
    /// Python with netaio 0.0.9 (default: $NORMAN_TEST_PYTHON; unset: the netaio runs are skipped).
    #[arg(long)]
    python: Option<PathBuf>,
}

pub fn run(args: MsgArgs) -> CliResult {
    match args.command {
        MsgCommand::Serve(args) => serve(args),
        MsgCommand::Request(args) => request(args),
        MsgCommand::Node(args) => node(args),
        MsgCommand::Bench(args) => bench(args),
    }
}

/// HOST:PORT to one socket address (the first the resolver gives).
fn resolve(flag: &str, addr: &str) -> CliResult<SocketAddr> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()
        .map_err(|e| format!("{flag} {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{flag} {addr}: no address"))
}

/// A multi-threaded runtime for the commands that serve (two workers: the machine is shared).
fn server_runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Raises the soft limit on open files to the hard one: a server with many clients needs a
/// descriptor per connection (the common soft default is 1024).
pub fn raise_nofile_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on this process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// SIGINT or SIGTERM, registered now (so that a signal right after the first stdout line is
/// already ours), awaited later. Needs the runtime.
fn stop_signal() -> CliResult<impl std::future::Future<Output = CliResult<()>>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        Ok(())
    })
}

fn first_line(line: &str) -> CliResult<()> {
    let mut out = std::io::stdout();
    writeln!(out, "{line}").and_then(|()| out.flush()).map_err(|e| format!("writing to stdout: {e}"))
}

fn serve(args: ServeArgs) -> CliResult {
    let layers = args.layers.load()?;
    let listen = resolve("--listen", &args.listen)?;
    raise_nofile_limit();
    server_runtime()?.block_on(async {
        let stop = stop_signal()?;
        let server = broker::start(listen, &layers, args.max_store_bytes, args.max_connections).await?;
        first_line(&format!("norman msg listening on {}", server.local_addr().unwrap_or(listen)))?;
        let stopped = stop.await;
        server.shutdown().await;
        stopped
    })?;
    Ok(ExitCode::SUCCESS)
}

fn print_message(msg: &Message) -> CliResult<()> {
    print_line(&format::message_line(&msg.message_type.to_string(), &msg.uri, &msg.content)).map(|_| ())
}

fn request(args: RequestArgs) -> CliResult {
    let layers = args.layers.load()?;
    let content = match &args.content_file {
        Some(path) => {
            // Checked before reading: a payload past netaio's limit could never be sent anyway.
            let len =
                std::fs::metadata(path).map_err(|e| format!("--content-file {}: {e}", path.display()))?.len();
            if len > NETAIO_MAX_PAYLOAD as u64 {
                return Err(format!(
                    "--content-file {}: {len} bytes; uri + content are at most {NETAIO_MAX_PAYLOAD} bytes",
                    path.display()
                ));
            }
            std::fs::read(path).map_err(|e| format!("--content-file {}: {e}", path.display()))?
        }
        None => args.content.clone().unwrap_or_default().into_bytes(),
    };
    if args.uri.len() + content.len() > NETAIO_MAX_PAYLOAD {
        return Err(format!(
            "--uri and --content: {} bytes; uri + content are at most {NETAIO_MAX_PAYLOAD} bytes (one message; split larger payloads)",
            args.uri.len() + content.len()
        ));
    }
    if args.count.is_some() && args.kind != Op::Subscribe {
        return Err("--count goes with --type subscribe".into());
    }
    let addr = resolve("address", &args.addr)?.to_string();
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let deadline = tokio::time::Instant::now() + timeout;
    crate::runtime()?.block_on(async {
        let config =
            ClientConfig { layers: layers.outer(), connect_timeout: timeout, ..ClientConfig::default() };
        let client = Client::connect(&addr, config).await.map_err(|e| e.to_string())?;
        let uri = Bytes::from(args.uri.clone().into_bytes());
        let inner = layers.inner();
        // Notifications come through a route, so that the inner layers open them as well.
        let (notes_tx, mut notes) = tokio::sync::mpsc::channel::<Message>(256);
        if args.kind == Op::Subscribe {
            client.route(
                Key::TypeUri(MessageType::NOTIFY_URI, uri.clone()),
                inner.clone(),
                false,
                norman::msg::handler(move |m: Message, _| {
                    let tx = notes_tx.clone();
                    async move {
                        let _ = tx.send(m).await;
                        None
                    }
                }),
            );
        }
        let msg = Message::new(args.kind.message_type(), uri, Bytes::from(content));
        match client.request_message(msg, &inner, timeout).await {
            Ok(reply) => print_message(&reply)?,
            Err(norman::Error::Remote { reply }) => {
                print_message(&reply)?;
                return Err(format!(
                    "{addr} answered {} ({})",
                    reply.message_type,
                    format::show(&reply.content)
                ));
            }
            Err(e) => return Err(format!("{addr}: {e}")),
        }
        if args.kind != Op::Subscribe {
            return Ok(());
        }
        let mut got = 0u64;
        while !matches!(args.count, Some(want) if got >= want) {
            match tokio::time::timeout_at(deadline, notes.recv()).await {
                Ok(Some(note)) => {
                    print_message(&note)?;
                    got += 1;
                }
                Ok(None) => return Err(format!("{addr}: the connection was closed")),
                Err(_) => match args.count {
                    Some(want) => {
                        return Err(format!(
                            "{got} of {want} notifications arrived within --timeout-ms {}",
                            args.timeout_ms
                        ))
                    }
                    None => break,
                },
            }
        }
        client.close().await;
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The checked settings of `norman msg node`.
struct NodePlan {
    listen: SocketAddr,
    multicast: MulticastConfig,
}

fn node_plan(args: &NodeArgs) -> CliResult<NodePlan> {
    let listen = resolve("--listen", &args.listen)?;
    let group: IpAddr =
        args.group.parse().map_err(|_| format!("--group {}: not an IP address", args.group))?;
    if !group.is_multicast() {
        return Err(format!("--group {group}: not a multicast address (224.0.0.0/4 or ff00::/8)"));
    }
    if group.is_ipv4() != listen.is_ipv4() {
        return Err(format!("--group {group} and --listen {listen}: one is IPv4, the other IPv6"));
    }
    if args.id.is_empty() {
        return Err("--id is empty".into());
    }
    if args.every_ms == 0 || args.peer_timeout_ms == 0 {
        return Err("--every-ms and --peer-timeout-ms must be above 0".into());
    }
    let mut multicast = MulticastConfig { group, port: args.multicast_port, ..MulticastConfig::default() };
    // Without --interface, multicast stays on this machine (127.0.0.1; for IPv6 the kernel's).
    match (&args.interface, group) {
        (None, _) => {}
        (Some(text), IpAddr::V4(_)) => {
            multicast.interface_v4 = text
                .parse()
                .map_err(|_| format!("--interface {text}: not an IPv4 address (the group is IPv4)"))?;
        }
        (Some(text), IpAddr::V6(_)) => {
            multicast.interface_v6 = text
                .parse()
                .map_err(|_| format!("--interface {text}: not an interface index (the group is IPv6)"))?;
        }
    }
    Ok(NodePlan { listen, multicast })
}

fn node(args: NodeArgs) -> CliResult {
    let layers = args.layers.load()?;
    let plan = node_plan(&args)?;
    crate::runtime()?.block_on(async {
        let stop = stop_signal()?;
        let config = NodeConfig {
            layers: layers.outer(),
            multicast: Some(plan.multicast),
            ..NodeConfig::new(plan.listen)
        };
        let node = Node::bind(config).await.map_err(|e| format!("--listen {}: {e}", plan.listen))?;
        let inner = layers.inner();
        node.route(
            Key::TypeUri(MessageType::REQUEST_URI, Bytes::from_static(b"echo")),
            inner.clone(),
            false,
            norman::msg::handler(|m: Message, _| async move {
                Some(Message::new(MessageType::RESPOND_URI, m.uri, m.content))
            }),
        );
        let id = Bytes::from(args.id.clone().into_bytes());
        // netaio's usual peer data: packify({"name": id}).
        let data = Value::Dict(vec![(Value::Str("name".into()), Value::Bytes(id.to_vec()))]).pack();
        node.manage_peers(PeerConfig {
            every: Duration::from_millis(args.every_ms),
            timeout: Duration::from_millis(args.peer_timeout_ms),
            layers: inner,
            ..PeerConfig::new(id, data)
        });
        first_line(&format!("norman msg node listening on {}", node.local_addr()))?;
        let events = async {
            while let Some(event) = node.next_event().await {
                let line = match event {
                    NodeEvent::PeerDiscovered(peer) => match peer.addrs.first() {
                        Some(addr) => format!("peer {} at {addr}", format::show_id(&peer.id)),
                        None => format!("peer {}", format::show_id(&peer.id)),
                    },
                    NodeEvent::PeerGone { id, .. } => format!("gone {}", format::show_id(&id)),
                };
                print_line(&line)?;
            }
            Ok::<(), String>(())
        };
        let duration = async {
            match args.duration_ms {
                Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            r = events => r,
            r = stop => r,
            () = duration => Ok(()),
        };
        node.close().await;
        result
    })?;
    Ok(ExitCode::SUCCESS)
}

fn bench(args: BenchArgs) -> CliResult {
    bench::run(args)
}
