//! Causes and evidence names (the contract's vocabulary) and the `injected` rule.

/// Why a RST was sent: exactly one per RST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    /// The responder answered the originator's SYN with a RST; no SYN-ACK was seen.
    Refused,
    /// A RST during the handshake (after a SYN, before it completed).
    HandshakeAbort,
    /// A RST on an established connection before any FIN.
    Abort,
    /// A RST after a FIN from either side.
    AfterClose,
    /// A RST answering a non-SYN packet of a connection the sender does not know.
    Unsolicited,
    /// No earlier packet of this connection is in the capture.
    Orphan,
    /// RST combined with SYN or FIN.
    Invalid,
}

impl Cause {
    pub const ALL: [Cause; 7] = [
        Cause::Refused,
        Cause::HandshakeAbort,
        Cause::Abort,
        Cause::AfterClose,
        Cause::Unsolicited,
        Cause::Orphan,
        Cause::Invalid,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cause::Refused => "refused",
            Cause::HandshakeAbort => "handshake_abort",
            Cause::Abort => "abort",
            Cause::AfterClose => "after_close",
            Cause::Unsolicited => "unsolicited",
            Cause::Orphan => "orphan",
            Cause::Invalid => "invalid",
        }
    }
}

/// Evidence names, as bits of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Evidence(pub u32);

impl Evidence {
    pub const SEQ_ZERO: Evidence = Evidence(1 << 0);
    pub const ACK_SYN: Evidence = Evidence(1 << 1);
    pub const WIN_NONZERO: Evidence = Evidence(1 << 2);
    pub const PAYLOAD: Evidence = Evidence(1 << 3);
    pub const DIAG_PAYLOAD: Evidence = Evidence(1 << 4);
    pub const TTL_MISMATCH: Evidence = Evidence(1 << 5);
    pub const IPID_MISMATCH: Evidence = Evidence(1 << 6);
    pub const DATA_AFTER_RST: Evidence = Evidence(1 << 7);
    pub const SEQ_CHANGE: Evidence = Evidence(1 << 8);
    pub const ACK_CHANGE: Evidence = Evidence(1 << 9);
    pub const SEQ_BEHIND: Evidence = Evidence(1 << 10);
    pub const INEXACT_SEQ: Evidence = Evidence(1 << 11);
    pub const OUT_OF_WINDOW: Evidence = Evidence(1 << 12);
    pub const BURST: Evidence = Evidence(1 << 13);
    pub const TTL_VARIES: Evidence = Evidence(1 << 14);
    pub const STORM: Evidence = Evidence(1 << 15);

    /// (bit, name), sorted by name: the order the set is written in.
    pub const NAMES: [(Evidence, &'static str); 16] = [
        (Evidence::ACK_CHANGE, "ack_change"),
        (Evidence::ACK_SYN, "ack_syn"),
        (Evidence::BURST, "burst"),
        (Evidence::DATA_AFTER_RST, "data_after_rst"),
        (Evidence::DIAG_PAYLOAD, "diag_payload"),
        (Evidence::INEXACT_SEQ, "inexact_seq"),
        (Evidence::IPID_MISMATCH, "ipid_mismatch"),
        (Evidence::OUT_OF_WINDOW, "out_of_window"),
        (Evidence::PAYLOAD, "payload"),
        (Evidence::SEQ_BEHIND, "seq_behind"),
        (Evidence::SEQ_CHANGE, "seq_change"),
        (Evidence::SEQ_ZERO, "seq_zero"),
        (Evidence::STORM, "storm"),
        (Evidence::TTL_MISMATCH, "ttl_mismatch"),
        (Evidence::TTL_VARIES, "ttl_varies"),
        (Evidence::WIN_NONZERO, "win_nonzero"),
    ];

    pub fn has(self, e: Evidence) -> bool {
        self.0 & e.0 != 0
    }

    pub fn add(&mut self, e: Evidence) {
        self.0 |= e.0;
    }

    /// The names in this set, sorted.
    pub fn names(self) -> Vec<&'static str> {
        Evidence::NAMES
            .iter()
            .filter(|(e, _)| self.has(*e))
            .map(|(_, n)| *n)
            .collect()
    }
}

/// The `injected` verdict: T only on strong evidence —
/// `data_after_rst`, `seq_change`, `ack_change` or `seq_behind` alone, or `ttl_mismatch`
/// together with `win_nonzero`, `burst` or `ttl_varies`.
pub fn injected_rule(e: Evidence) -> bool {
    e.has(Evidence::DATA_AFTER_RST)
        || e.has(Evidence::SEQ_CHANGE)
        || e.has(Evidence::ACK_CHANGE)
        || e.has(Evidence::SEQ_BEHIND)
        || (e.has(Evidence::TTL_MISMATCH)
            && (e.has(Evidence::WIN_NONZERO)
                || e.has(Evidence::BURST)
                || e.has(Evidence::TTL_VARIES)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sorted_and_complete() {
        let names: Vec<_> = Evidence::NAMES.iter().map(|(_, n)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        let all = Evidence(0xffff);
        assert_eq!(all.names().len(), 16);
    }

    #[test]
    fn injected_needs_strong_evidence() {
        let mut e = Evidence::default();
        e.add(Evidence::TTL_MISMATCH);
        assert!(!injected_rule(e));
        e.add(Evidence::WIN_NONZERO);
        assert!(injected_rule(e));
        let mut e = Evidence::default();
        e.add(Evidence::BURST);
        e.add(Evidence::TTL_VARIES);
        e.add(Evidence::WIN_NONZERO);
        assert!(!injected_rule(e));
        assert!(injected_rule(Evidence::SEQ_BEHIND));
        assert!(injected_rule(Evidence::DATA_AFTER_RST));
    }
}
