//! TCP flag bits and tcpdump's notation for them.

pub mod tcp_flags {
    pub const FIN: u16 = 0x001;
    pub const SYN: u16 = 0x002;
    pub const RST: u16 = 0x004;
    pub const PSH: u16 = 0x008;
    pub const ACK: u16 = 0x010;
    pub const URG: u16 = 0x020;
    pub const ECE: u16 = 0x040;
    pub const CWR: u16 = 0x080;
    /// Accurate-ECN (formerly NS), bit 8 of the 12-bit field.
    pub const AE: u16 = 0x100;
}

pub(crate) use tcp_flags::RST;

/// Flags as tcpdump prints them (print-tcp.c `tcp_flag_values`, in that order):
/// F S R P . U E W e; `none` when no flag is set. Reserved bits are not shown.
pub fn flags_tcpdump(flags: u16) -> String {
    use tcp_flags::*;
    const TABLE: [(u16, char); 9] = [
        (FIN, 'F'),
        (SYN, 'S'),
        (RST, 'R'),
        (PSH, 'P'),
        (ACK, '.'),
        (URG, 'U'),
        (ECE, 'E'),
        (CWR, 'W'),
        (AE, 'e'),
    ];
    let s: String = TABLE
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, c)| *c)
        .collect();
    if s.is_empty() {
        "none".to_string()
    } else {
        s
    }
}
