//! Packet counters: every packet the program sees adds one to exactly one
//! verdict counter; `BansAdded` counts events on top of that.

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Not IP, not TCP/UDP, a non-first fragment, or too short: passed.
    NotClassified = 0,
    /// TCP/UDP to no protected, knock or trap port: passed.
    Unrelated = 1,
    /// From an allow-listed source, where the filter would otherwise drop
    /// the packet or keep state (a closed-door SYN, a knock-port or trap
    /// packet, past a ban of the same address): passed.
    Allowed = 2,
    /// From a banned source: dropped.
    Banned = 3,
    /// New connection to a protected port through an open door: passed.
    DoorPassed = 4,
    /// New connection to a protected port with the door closed: dropped.
    DoorClosed = 5,
    /// Non-SYN TCP to a protected port (established sessions): passed.
    ProtectedOther = 6,
    /// Expected knock that advanced the sequence. Knock-port packets go on
    /// to the host's stack unless `knock_answer = "drop"`.
    KnockAdvanced = 7,
    /// Last knock of the sequence, which opened the door.
    DoorOpened = 8,
    /// Retransmitted copy of the previous knock: ignored.
    KnockRepeated = 9,
    /// Knock-port packet out of sequence: progress reset.
    WrongKnock = 10,
    /// TCP other than a bare SYN to a tcp knock port: ignored.
    KnockNoise = 11,
    /// Packet to a trap port: dropped.
    Trapped = 12,
    /// Bans added by the program (an event, not a verdict).
    BansAdded = 13,
    /// Frames built to hide their transport header or source from this
    /// parser (fragments, over-long header chains or VLAN stacks,
    /// IPv4-mapped IPv6 sources): dropped.
    Malformed = 14,
    /// New connection attempt to an unrelated port in the middle of a knock
    /// sequence: passed, progress reset.
    KnockReset = 15,
    /// UDP to the SPA port, copied to `iplock run`; then passed to the
    /// host's stack like a knock (dropped under `knock_answer = "drop"` or
    /// a ban of the source).
    SpaSeen = 16,
    /// UDP to the SPA port over the rate limit (or with the SPA ring full):
    /// not copied; passed or dropped as for `SpaSeen`.
    SpaThrottled = 17,
}

/// Number of counters (size of the counter map).
pub const COUNTERS: u32 = 18;

impl Counter {
    /// Every counter in index order.
    pub const ALL: [Counter; COUNTERS as usize] = [
        Counter::NotClassified,
        Counter::Unrelated,
        Counter::Allowed,
        Counter::Banned,
        Counter::DoorPassed,
        Counter::DoorClosed,
        Counter::ProtectedOther,
        Counter::KnockAdvanced,
        Counter::DoorOpened,
        Counter::KnockRepeated,
        Counter::WrongKnock,
        Counter::KnockNoise,
        Counter::Trapped,
        Counter::BansAdded,
        Counter::Malformed,
        Counter::KnockReset,
        Counter::SpaSeen,
        Counter::SpaThrottled,
    ];

    /// Name used in `iplock status` and its JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::NotClassified => "not_classified",
            Counter::Unrelated => "unrelated",
            Counter::Allowed => "allowed",
            Counter::Banned => "banned",
            Counter::DoorPassed => "door_passed",
            Counter::DoorClosed => "door_closed",
            Counter::ProtectedOther => "protected_other",
            Counter::KnockAdvanced => "knock_advanced",
            Counter::DoorOpened => "door_opened",
            Counter::KnockRepeated => "knock_repeated",
            Counter::WrongKnock => "wrong_knock",
            Counter::KnockNoise => "knock_noise",
            Counter::Trapped => "trapped",
            Counter::BansAdded => "bans_added",
            Counter::Malformed => "malformed",
            Counter::KnockReset => "knock_reset",
            Counter::SpaSeen => "spa_seen",
            Counter::SpaThrottled => "spa_throttled",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }
}
