//! File checksums for STOP (`--file-checksum`), computed over the bytes really written.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::options::ChecksumKind;

/// A running checksum of one of ascp's kinds.
pub(crate) enum Hasher {
    Md5(Md5),
    Sha1(Sha1),
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Hasher {
    pub(crate) fn new(kind: ChecksumKind) -> Hasher {
        match kind {
            ChecksumKind::Md5 => Hasher::Md5(Md5::new()),
            ChecksumKind::Sha1 => Hasher::Sha1(Sha1::new()),
            ChecksumKind::Sha256 => Hasher::Sha256(Sha256::new()),
            ChecksumKind::Sha384 => Hasher::Sha384(Sha384::new()),
            ChecksumKind::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// Lower-case hexadecimal digest.
    pub(crate) fn hex(self) -> String {
        match self {
            Hasher::Md5(h) => hex::encode(h.finalize()),
            Hasher::Sha1(h) => hex::encode(h.finalize()),
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha384(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

/// Feed the first `len` bytes of `path` to `hasher`.
pub(crate) fn hash_prefix(path: &Path, len: u64, hasher: &mut Hasher) -> io::Result<()> {
    let mut file = File::open(path)?.take(len);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
    }
}

/// `FaspFileID`: a SHA-1 of the argument index, source and destination, written as five
/// groups of eight hex digits (the shape of the IDs in IBM's reference).
pub(crate) fn file_id(arg_index: u64, source: &str, destination: &str) -> String {
    let mut h = Sha1::new();
    h.update(arg_index.to_string().as_bytes());
    h.update([0]);
    h.update(source.as_bytes());
    h.update([0]);
    h.update(destination.as_bytes());
    let d = hex::encode(h.finalize());
    let groups: Vec<&str> = (0..5).map(|i| &d[i * 8..i * 8 + 8]).collect();
    groups.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let cases = [
            (ChecksumKind::Md5, "900150983cd24fb0d6963f7d28e17f72"),
            (
                ChecksumKind::Sha1,
                "a9993e364706816aba3e25717850c26c9cd0d89d",
            ),
            (
                ChecksumKind::Sha256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
        ];
        for (kind, want) in cases {
            let mut h = Hasher::new(kind);
            h.update(b"a");
            h.update(b"bc");
            assert_eq!(h.hex(), want);
        }
        let id = file_id(3, "/a", "/b");
        assert_eq!(id.len(), 44);
        assert_eq!(id.split('-').count(), 5);
    }
}
