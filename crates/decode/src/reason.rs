//! Structured RST reasons (draft-ietf-tcpm-rst-diagnostic-payload): an 8-byte payload
//! `magic 0x33AA | reason code (16 bit) | PEN (32 bit)`.

/// A decoded diagnostic payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RstReason {
    pub code: u16,
    /// IANA Private Enterprise Number; 0 means the code is from the IANA registry.
    pub pen: u32,
}

/// Names of the draft's proposed IANA "TCP Failure Causes" registry (codes 15–17 from
/// RFC 8684 §3.6).
fn code_name(code: u16) -> Option<&'static str> {
    Some(match code {
        1 => "ILLEGAL_OPTION_LENGTH",
        2 => "DESYNCHRONIZED_STATE",
        3 => "NEW_DATA_AFTER_CLOSE",
        4 => "ABORT",
        5 => "UNEXPECTED_ACK",
        6 => "UNEXPECTED_SYN",
        7 => "SECURITY_COMPARTMENT",
        8 => "MALFORMED_MESSAGE",
        9 => "NOT_AUTHORIZED",
        10 => "RESOURCE_EXCEEDED",
        11 => "NETWORK_FAILURE",
        12 => "RESET_FROM_PEER",
        13 => "DESTINATION_UNREACHABLE",
        14 => "CONNECTION_TIMEOUT",
        15 => "TOO_MUCH_OUTSTANDING_DATA",
        16 => "UNACCEPTABLE_PERFORMANCE",
        17 => "MIDDLEBOX_INTERFERENCE",
        _ => return None,
    })
}

impl RstReason {
    /// Parse a payload: only a payload of exactly 8 bytes with the magic counts (the draft
    /// says malformed payloads carrying the magic are to be ignored).
    pub fn parse(payload_len: u32, captured: &[u8]) -> Option<RstReason> {
        if payload_len != 8 || captured.len() != 8 || captured[0] != 0x33 || captured[1] != 0xaa {
            return None;
        }
        Some(RstReason {
            code: u16::from_be_bytes([captured[2], captured[3]]),
            pen: u32::from_be_bytes([captured[4], captured[5], captured[6], captured[7]]),
        })
    }
}

impl std::fmt::Display for RstReason {
    /// `4:ABORT` for registry codes, `99:unassigned` for unknown ones, `PEN 9:code 17` for
    /// vendor codes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.pen != 0 {
            write!(f, "PEN {}:code {}", self.pen, self.code)
        } else {
            match code_name(self.code) {
                Some(n) => write!(f, "{}:{}", self.code, n),
                None => write!(f, "{}:unassigned", self.code),
            }
        }
    }
}

/// The `reason` field for a RST: the decoded structured reason, or None.
pub fn decode_rst_reason(payload_len: u32, captured: &[u8]) -> Option<String> {
    RstReason::parse(payload_len, captured).map(|r| r.to_string())
}
