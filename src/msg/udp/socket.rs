//! The node's sockets, made with socket2 so that every option is set explicitly.

use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::config::MulticastConfig;
use crate::error::{Error, Result};

pub(super) fn io_err(during: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    Error::io(during)
}

pub(super) fn new_socket(addr: &SocketAddr) -> Result<Socket> {
    let s = Socket::new(Domain::for_address(*addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(io_err("creating a UDP socket"))?;
    if addr.is_ipv6() {
        s.set_only_v6(true).map_err(io_err("setting IPV6_V6ONLY"))?;
    }
    s.set_nonblocking(true).map_err(io_err("setting O_NONBLOCK"))?;
    Ok(s)
}

pub(super) fn into_tokio(s: Socket) -> Result<UdpSocket> {
    UdpSocket::from_std(s.into()).map_err(io_err("registering a UDP socket"))
}

/// Sets the sending options of multicast on `s`.
pub(super) fn multicast_send_options(s: &Socket, m: &MulticastConfig) -> Result<()> {
    match m.group {
        IpAddr::V4(_) => {
            s.set_multicast_if_v4(&m.interface_v4).map_err(io_err("setting IP_MULTICAST_IF"))?;
            s.set_multicast_ttl_v4(m.ttl).map_err(io_err("setting IP_MULTICAST_TTL"))?;
            s.set_multicast_loop_v4(m.loopback).map_err(io_err("setting IP_MULTICAST_LOOP"))?;
        }
        IpAddr::V6(_) => {
            s.set_multicast_if_v6(m.interface_v6).map_err(io_err("setting IPV6_MULTICAST_IF"))?;
            s.set_multicast_hops_v6(m.ttl).map_err(io_err("setting IPV6_MULTICAST_HOPS"))?;
            s.set_multicast_loop_v6(m.loopback).map_err(io_err("setting IPV6_MULTICAST_LOOP"))?;
        }
    }
    Ok(())
}

pub(super) fn join(s: &Socket, m: &MulticastConfig) -> Result<()> {
    match m.group {
        IpAddr::V4(g) => {
            s.join_multicast_v4(&g, &m.interface_v4).map_err(io_err("joining the multicast group"))
        }
        IpAddr::V6(g) => {
            s.join_multicast_v6(&g, m.interface_v6).map_err(io_err("joining the multicast group"))
        }
    }
}
