//! A DHCP probe: one message and its answer from a UDP socket in a client namespace, so that
//! "until dnsmasq answers" measures dnsmasq, not a whole DHCP client run (udhcpc takes about
//! 100 ms for its own start and exchange).

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use dhcproto::v4::{self, DhcpOption, Message, MessageType};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use socket2::{Domain, Protocol, Socket, Type};

use crate::kernel;

/// A DHCP socket in `namespace`, on `interface`.
pub struct Probe {
    socket: UdpSocket,
}

impl Probe {
    /// Bound to port 68 on `interface` of `namespace`, from `from` (unspecified before a lease,
    /// the lease's address for a renewal).
    pub fn new(namespace: &str, interface: &str, from: Ipv4Addr) -> Probe {
        let interface = interface.to_string();
        kernel::in_namespace(namespace, move || {
            let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
            socket.set_broadcast(true).unwrap();
            socket.set_reuse_address(true).unwrap();
            socket.bind_device(Some(interface.as_bytes())).unwrap();
            socket
                .bind(&SocketAddrV4::new(from, 68).into())
                .expect("bind the DHCP client port");
            Probe {
                socket: socket.into(),
            }
        })
        .join()
        .unwrap()
    }

    /// A DISCOVER for `mac` (broadcast, with the broadcast flag so the answer is broadcast
    /// too), resent every `every` until an OFFER that `accept`s comes or `timeout` passes;
    /// the offer.
    pub fn discover(
        &self,
        mac: &str,
        every: Duration,
        timeout: Duration,
        accept: impl Fn(Ipv4Addr) -> bool,
    ) -> Option<Message> {
        let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
        self.exchange(
            mac,
            MessageType::Discover,
            None,
            to,
            (every, timeout),
            accept,
        )
    }

    /// A renewal (a REQUEST from `ciaddr`, unicast to `server`), as a client sends it at half
    /// its lease; the acknowledgement.
    pub fn renew(
        &self,
        mac: &str,
        ciaddr: Ipv4Addr,
        server: Ipv4Addr,
        timeout: Duration,
    ) -> Option<Message> {
        let to = SocketAddrV4::new(server, 67);
        let once = (timeout, timeout);
        self.exchange(mac, MessageType::Request, Some(ciaddr), to, once, |_| true)
    }

    /// Sends the message every `every` until an answer of the expected kind that `accept`s.
    fn exchange(
        &self,
        mac: &str,
        kind: MessageType,
        ciaddr: Option<Ipv4Addr>,
        to: SocketAddrV4,
        (every, timeout): (Duration, Duration),
        accept: impl Fn(Ipv4Addr) -> bool,
    ) -> Option<Message> {
        let chaddr: Vec<u8> = mac
            .split(':')
            .map(|b| u8::from_str_radix(b, 16).expect("a MAC"))
            .collect();
        let xid: u32 = rand_xid();
        let mut msg = Message::default();
        msg.set_xid(xid).set_chaddr(&chaddr);
        match ciaddr {
            Some(ip) => {
                msg.set_ciaddr(ip);
            }
            None => {
                msg.set_flags(v4::Flags::default().set_broadcast());
            }
        }
        msg.opts_mut().insert(DhcpOption::MessageType(kind));
        let mut packet = Vec::new();
        msg.encode(&mut Encoder::new(&mut packet)).unwrap();

        let expected = match kind {
            MessageType::Discover => MessageType::Offer,
            _ => MessageType::Ack,
        };
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline {
            self.socket.send_to(&packet, to).ok()?;
            let resend = (Instant::now() + every).min(deadline);
            while let Some(wait) = resend.checked_duration_since(Instant::now()) {
                if wait.is_zero() {
                    break;
                }
                self.socket.set_read_timeout(Some(wait)).unwrap();
                let Ok(n) = self.socket.recv(&mut buf) else {
                    break;
                };
                let Ok(answer) = Message::decode(&mut Decoder::new(&buf[..n])) else {
                    continue;
                };
                if answer.xid() == xid
                    && answer.opts().msg_type() == Some(expected)
                    && accept(answer.yiaddr())
                {
                    return Some(answer);
                }
            }
        }
        None
    }
}

fn rand_xid() -> u32 {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).unwrap();
    u32::from_ne_bytes(b)
}
