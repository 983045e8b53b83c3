//! The bearer token: read from a file, never shown, compared in constant time.

use std::fmt;
use std::path::Path;

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};
use zeroize::Zeroizing;

use crate::error::ServeError;

/// The metadata key every call carries its token in.
pub const AUTHORIZATION: &str = "authorization";

/// A bearer token shared by the server and its clients. Its [`Debug`](fmt::Debug) shows no
/// part of it, and it has no `Display`: it cannot end up in a log by accident. It is wiped from
/// memory when dropped.
#[derive(Clone)]
pub struct Token(Zeroizing<String>);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A token from its text (surrounding white space removed). `None` when nothing is left,
    /// or when it holds a character that cannot travel in an HTTP/2 header.
    pub fn new(text: &str) -> Option<Token> {
        let text = text.trim();
        let usable = !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic());
        usable.then(|| Token(Zeroizing::new(text.to_owned())))
    }

    /// The token in the file at `path`: its first line. The file must not be readable or
    /// writable by group or others (like an SSH key), and the token must be non-empty
    /// printable ASCII.
    pub fn from_file(path: &Path) -> Result<Token, ServeError> {
        use std::os::unix::fs::PermissionsExt;
        let bad = |reason: String| ServeError::TokenFile {
            path: path.to_path_buf(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(bad(format!(
                "its mode is {mode:03o}: group and others must have no access (chmod 600)"
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let first = text.lines().next().unwrap_or_default();
        Token::new(first).ok_or_else(|| {
            bad("its first line holds no token (printable ASCII without spaces)".to_owned())
        })
    }

    /// The value of the `authorization` metadata: `Bearer <token>`.
    pub fn header_value(&self) -> MetadataValue<tonic::metadata::Ascii> {
        let text = Zeroizing::new(format!("Bearer {}", self.0.as_str()));
        let mut value = MetadataValue::try_from(text.as_str())
            .unwrap_or_else(|_| MetadataValue::from_static(""));
        value.set_sensitive(true);
        value
    }

    /// Whether `offered` is this token, in a time that does not depend on where they differ.
    pub fn matches(&self, offered: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), offered)
    }
}

/// Equality of two byte strings, every byte of the longer one visited whatever the contents.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(x ^ y);
    }
    diff == 0
}

/// The server's check of every call: with a token, the call must carry
/// `authorization: Bearer <token>`; without one, every call passes (loopback and Unix
/// sockets only: [`crate::Daemon::bind`] refuses any other address without a token).
#[derive(Clone, Debug)]
pub struct RequireToken {
    token: Option<Token>,
}

impl RequireToken {
    /// A check against `token` (none: every call passes).
    pub fn new(token: Option<Token>) -> RequireToken {
        RequireToken { token }
    }
}

impl Interceptor for RequireToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = &self.token else {
            return Ok(request);
        };
        let offered = request
            .metadata()
            .get(AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer ".as_slice()));
        match offered {
            Some(offered) if token.matches(offered) => Ok(request),
            Some(_) => Err(Status::unauthenticated(
                "the bearer token is not the server's",
            )),
            None => Err(Status::unauthenticated(
                "this server requires a token: send `authorization: Bearer <token>`",
            )),
        }
    }
}

/// The client's side: adds `authorization: Bearer <token>` to every call (nothing without a
/// token).
#[derive(Clone, Debug)]
pub struct SendToken {
    token: Option<Token>,
}

impl SendToken {
    /// Send `token` (none: send nothing).
    pub fn new(token: Option<Token>) -> SendToken {
        SendToken { token }
    }
}

impl Interceptor for SendToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.token {
            request
                .metadata_mut()
                .insert(AUTHORIZATION, token.header_value());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(check: &mut RequireToken, header: Option<&str>) -> Result<(), tonic::Code> {
        let mut request = Request::new(());
        if let Some(h) = header {
            request
                .metadata_mut()
                .insert(AUTHORIZATION, MetadataValue::try_from(h).unwrap());
        }
        check.call(request).map(|_| ()).map_err(|s| s.code())
    }

    #[test]
    fn the_token_is_required_and_compared_whole() {
        let mut check = RequireToken::new(Token::new("s3cret-token"));
        assert_eq!(call(&mut check, Some("Bearer s3cret-token")), Ok(()));
        for bad in [
            None,
            Some("Bearer s3cret-toke"),
            Some("Bearer s3cret-token2"),
            Some("Bearer S3cret-token"),
            Some("Bearer "),
            Some("Basic s3cret-token"),
            Some("s3cret-token"),
        ] {
            assert_eq!(
                call(&mut check, bad),
                Err(tonic::Code::Unauthenticated),
                "{bad:?}"
            );
        }
        let mut open = RequireToken::new(None);
        assert_eq!(call(&mut open, None), Ok(()));
    }

    #[test]
    fn the_client_sends_what_the_server_wants() {
        let token = Token::new("abc.DEF-123").unwrap();
        let request = SendToken::new(Some(token.clone()))
            .call(Request::new(()))
            .unwrap();
        let mut check = RequireToken::new(Some(token));
        assert!(check.call(request).is_ok());
    }

    #[test]
    fn tokens_are_never_shown() {
        let token = Token::new("hunter2hunter2").unwrap();
        assert!(!format!("{token:?}").contains("hunter2"));
        assert!(!format!("{:?}", RequireToken::new(Some(token))).contains("hunter2"));
        assert!(Token::new("  ").is_none());
        assert!(Token::new("a b").is_none());
        assert!(Token::new("é").is_none());
    }

    #[test]
    fn token_files_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "tok-en_1\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Token::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("644") && err.contains(&path.display().to_string()),
            "{err}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let token = Token::from_file(&path).unwrap();
        assert!(token.matches(b"tok-en_1"));
        std::fs::write(&path, "\n").unwrap();
        assert!(Token::from_file(&path).is_err());
        assert!(Token::from_file(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn equality_is_exact() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"", b"\0"));
    }
}
