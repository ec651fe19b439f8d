//! What the XDP program extracts from a packet for the decision.

/// IP protocol numbers the program classifies.
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// TCP flag bits (byte 13 of the TCP header).
pub const TCP_SYN: u8 = 0x02;
pub const TCP_ACK: u8 = 0x10;

/// A TCP or UDP packet reduced to what the decision needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// [`PROTO_TCP`] or [`PROTO_UDP`].
    pub proto: u8,
    /// Destination port, host byte order.
    pub dport: u16,
    /// TCP flags byte; 0 for UDP.
    pub tcp_flags: u8,
}

impl Packet {
    /// A TCP SYN without ACK: the first packet of a connection, and the only
    /// TCP packet that counts as a knock.
    #[inline(always)]
    pub const fn is_bare_syn(&self) -> bool {
        self.proto == PROTO_TCP && self.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
    }

    /// A new connection attempt: a bare SYN or any UDP datagram (UDP has
    /// no established traffic to tell apart).
    #[inline(always)]
    pub const fn opens_connection(&self) -> bool {
        self.proto == PROTO_UDP || self.is_bare_syn()
    }
}
