//! FASP error codes (the `Code` field of `ERROR` and `FILEERROR`).

/// What a FASP error code means, in ascp's own terms; `None` for codes this crate does not know.
pub fn meaning(code: u64) -> Option<&'static str> {
    Some(match code {
        1 => "generic FASP protocol error",
        2 => "generic ascp error",
        3 => "ambiguous target",
        4 => "no such file or directory",
        5 => "insufficient permissions",
        6 => "target must be a directory",
        7 => "expected a regular file",
        8 => "incorrect usage",
        9 => "duplicate license",
        10 => "rate exceeds license cap",
        11 => "internal error",
        12 => "error establishing SSH connection",
        13 => "timeout establishing SSH connection",
        14 => "error establishing UDP connection",
        15 => "timeout establishing UDP connection",
        16 => "connection lost",
        17 => "receiver can't send feedback",
        18 => "receiver can't receive UDP data",
        19 => "authentication failure",
        20 => "nothing to transfer",
        21 => "not a regular file",
        22 => "file table overflow",
        23 => "too many files open",
        24 => "file too big for filesystem",
        25 => "no space left on disk",
        26 => "read-only filesystem",
        27 => "one or more files failed",
        28 => "cancelled by user",
        29 => "license not found",
        30 => "license expired",
        31 => "unable to set up socket",
        32 => "out of memory",
        33 => "unable to spawn thread",
        34 => "unauthorized by external auth server",
        35 => "disk read error",
        36 => "disk write error",
        37 => "authorization failure",
        38 => "operation not permitted by license",
        39 => "peer aborted session",
        40 => "transfer stalled, timed out",
        41 => "path outside docroot",
        42 => "file or directory already exists",
        43 => "cannot stat file",
        44 => "UDP session initiation fatal error",
        45 => "bandwidth measurement fatal error",
        46 => "virtual link error",
        47 => "error establishing HTTP connection",
        48 => "file encryption/decryption error",
        49 => "bad decryption passphrase",
        50 => "invalid configuration",
        51 => "remote host key check failed",
        52 => "file start validation failed",
        53 => "file stop validation failed",
        54 => "file threshold validation failed",
        55 => "file path too long",
        56 => "illegal characters in path",
        57 => "chunk not aligned with storage",
        58 => "session aborted by validation",
        59 => "remote storage error",
        60 => "session aborted by Lua script",
        61 => "retryable encryption-at-rest error",
        62 => "fatal encryption-at-rest error",
        63 => "symbolic link loop",
        64 => "cannot rename partial file",
        65 => "cipher not allowed in FIPS mode",
        66 => "peer requires FIPS",
        _ => return None,
    })
}

/// Whether ascp's own table calls the code transient (worth a retry with resume):
/// 12-18, 23, 32, 33, 35-37, 39, 40, 44, 45, 47, 61.
pub fn is_retryable(code: u64) -> bool {
    matches!(code, 12..=18 | 23 | 32 | 33 | 35..=37 | 39 | 40 | 44 | 45 | 47 | 61)
}

/// `28`: the session was cancelled (by a `CANCEL` message).
pub const CANCELLED: u64 = 28;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_complete_and_retryable_set_is_exact() {
        assert!((1..=66).all(|c| meaning(c).is_some()));
        assert_eq!(meaning(0), None);
        assert_eq!(meaning(67), None);
        let retryable: Vec<u64> = (0..100).filter(|&c| is_retryable(c)).collect();
        assert_eq!(
            retryable,
            [
                12, 13, 14, 15, 16, 17, 18, 23, 32, 33, 35, 36, 37, 39, 40, 44, 45, 47, 61
            ]
        );
        assert_eq!(meaning(CANCELLED), Some("cancelled by user"));
    }
}
