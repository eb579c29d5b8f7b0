//! Zeek's TCP connection semantics (src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc,
//! scripts/base/protocols/conn/main.zeek): endpoint states, `conn_state()`, and the ports that
//! decide who is the originator when the SYN was missed.

/// A TCP endpoint's state as Zeek tracks it (init-bare.zeek: TCP_INACTIVE … TCP_RESET).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum EpState {
    #[default]
    Inactive,
    SynSent,
    SynAckSent,
    Partial,
    Established,
    Closed,
    Reset,
}

impl EpState {
    /// Zeek's `o_inactive` / `r_inactive`.
    pub fn inactive(self) -> bool {
        matches!(self, EpState::Inactive | EpState::Partial)
    }

    /// Zeek's `is_handshake` (TCP_Endpoint.cc): the states before the handshake is left.
    pub fn in_handshake(self) -> bool {
        matches!(
            self,
            EpState::Inactive | EpState::SynSent | EpState::SynAckSent
        )
    }
}

/// Zeek's `conn_state()` (main.zeek), from the two endpoint states, whether both endpoints
/// sent no data, and the history string.
pub fn conn_state(
    orig: EpState,
    resp: EpState,
    both_sizes_zero: bool,
    history: &[u8],
) -> &'static str {
    use EpState::*;
    let o_inactive = orig.inactive();
    let r_inactive = resp.inactive();
    if resp == Reset {
        if matches!(orig, SynSent | SynAckSent) || (orig == Reset && both_sizes_zero) {
            return "REJ";
        }
        if o_inactive {
            return "RSTRH";
        }
        return "RSTR";
    }
    if orig == Reset {
        if r_inactive {
            return if history_is_rstos0(history) {
                "RSTOS0"
            } else {
                "OTH"
            };
        }
        return "RSTO";
    }
    if orig == Closed && resp == Closed {
        return "SF";
    }
    if orig == Closed {
        return if r_inactive { "SH" } else { "S2" };
    }
    if resp == Closed {
        return if o_inactive { "SHR" } else { "S3" };
    }
    if orig == SynSent && resp == Inactive {
        return "S0";
    }
    if orig == Established && resp == Established {
        return "S1";
    }
    "OTH"
}

/// `/^\^?S[^HAFGIQ]*R.*/` — orig SYN, then anything but those upper-case letters, then R.
fn history_is_rstos0(h: &[u8]) -> bool {
    let h = h.strip_prefix(b"^").unwrap_or(h);
    let Some(rest) = h.strip_prefix(b"S") else {
        return false;
    };
    for &c in rest {
        match c {
            b'R' => return true,
            b'H' | b'A' | b'F' | b'G' | b'I' | b'Q' => return false,
            _ => {}
        }
    }
    false
}

/// Zeek's default `likely_server_ports` for TCP (ports registered by the base protocol
/// analyzers with `Analyzer::register_for_ports`).
pub fn likely_server_port(port: u16) -> bool {
    matches!(
        port,
        21 | 22
            | 25
            | 53
            | 79
            | 80
            | 81
            | 88
            | 135
            | 139
            | 143
            | 389
            | 443
            | 445
            | 465
            | 502
            | 514
            | 563
            | 585
            | 587
            | 614
            | 631
            | 636
            | 989
            | 990
            | 992
            | 993
            | 995
            | 1080
            | 1434
            | 1883
            | 2811
            | 3128
            | 3268
            | 3306
            | 3389
            | 5222
            | 5223
            | 5269
            | 5432
            | 6379
            | 6666..=6669 | 8000 | 8080 | 8888 | 20000
    )
}

/// Zeek's timers (init-bare.zeek), in nanoseconds.
pub mod timers {
    const S: i64 = 1_000_000_000;
    /// A connection is removed this long after its first complete close (`tcp_close_delay`).
    pub const CLOSE_DELAY: i64 = 5 * S;
    /// An unanswered SYN is logged S0 and removed this long after it (`tcp_attempt_delay`).
    pub const ATTEMPT_DELAY: i64 = 5 * S;
    /// Inactivity timeout once past the handshake (`tcp_inactivity_timeout`).
    pub const INACTIVITY: i64 = 300 * S;
    /// Inactivity timeout while still in the handshake (the session's initial
    /// `udp_inactivity_timeout`).
    pub const HANDSHAKE_INACTIVITY: i64 = 60 * S;
}

#[cfg(test)]
mod tests {
    use super::EpState::*;
    use super::*;

    #[test]
    fn zeek_conn_state_rst_behavior_baseline() {
        // testing/btest Traces conn_state-RST-behavior: R → OTH, SR → RSTOS0, SaR → RSTOS0,
        // SaFR → OTH.
        assert_eq!(conn_state(Reset, Inactive, true, b"R"), "OTH");
        assert_eq!(conn_state(Reset, Inactive, true, b"SR"), "RSTOS0");
        assert_eq!(conn_state(Reset, Inactive, true, b"SaR"), "RSTOS0");
        assert_eq!(conn_state(Reset, Inactive, true, b"SaFR"), "OTH");
        assert_eq!(conn_state(Reset, Inactive, true, b"^SR"), "RSTOS0");
    }

    #[test]
    fn conn_states() {
        assert_eq!(conn_state(SynSent, Reset, true, b"Sr"), "REJ");
        assert_eq!(conn_state(Reset, Reset, true, b"SrR"), "REJ");
        assert_eq!(conn_state(Partial, Reset, false, b"Dr"), "RSTRH");
        assert_eq!(conn_state(Inactive, Reset, true, b"^r"), "RSTRH");
        assert_eq!(conn_state(Closed, Reset, false, b"ShADadFr"), "RSTR");
        assert_eq!(conn_state(Reset, Established, false, b"ShR"), "RSTO");
        assert_eq!(conn_state(Closed, Closed, false, b"ShAadDfFr"), "SF");
        assert_eq!(conn_state(Closed, Partial, false, b"Fa"), "SH");
        assert_eq!(conn_state(Partial, Closed, false, b"^fA"), "SHR");
        assert_eq!(conn_state(SynSent, Inactive, true, b"S"), "S0");
        assert_eq!(conn_state(Established, Established, false, b"ShAD"), "S1");
        assert_eq!(conn_state(Closed, Established, false, b"ShADF"), "S2");
        assert_eq!(conn_state(Established, Closed, false, b"ShADf"), "S3");
    }

    #[test]
    fn server_ports() {
        assert!(likely_server_port(80) && likely_server_port(6667) && likely_server_port(502));
        assert!(!likely_server_port(110) && !likely_server_port(40000));
    }
}
