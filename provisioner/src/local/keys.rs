//! The local identity provider: an RS256 signing key minted once per local directory,
//! its public JWKS (what the API verifies against, as API Gateway's JWT authorizer does
//! with the real issuer's keys), and tokens with the contract's claims (`sub`, `iss`,
//! `aud`, `exp`, the roles claim and the cases claim).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};

use super::LocalError;
use super::layout::Layout;

/// Default claim holding the roles (`CHRONO_ROLES_CLAIM`).
pub const ROLES_CLAIM: &str = chrono_contract::claims::ROLES;
/// Default claim holding the case ids (`CHRONO_CASES_CLAIM`).
pub const CASES_CLAIM: &str = chrono_contract::claims::CASES;

/// The local signing key.
#[derive(Debug, Clone)]
pub struct SigningKey {
    key: RsaPrivateKey,
    kid: String,
}

impl SigningKey {
    /// Loads the key of `layout`, minting (and writing, with its JWKS) a new one when
    /// there is none. Returns the key and whether it was minted.
    pub fn load_or_mint(layout: &Layout) -> Result<(Self, bool), LocalError> {
        let path = layout.signing_key();
        if path.is_file() {
            return Ok((Self::load(&path)?, false));
        }
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048)
            .map_err(|e| LocalError::Key(e.to_string()))?;
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| LocalError::Key(e.to_string()))?;
        write_private(&path, pem.as_bytes())?;
        let me = SigningKey::from_key(key);
        let jwks =
            serde_json::to_string_pretty(&me.jwks()).map_err(|e| LocalError::Key(e.to_string()))?;
        std::fs::write(layout.jwks(), jwks + "\n")
            .map_err(LocalError::io("writing", layout.jwks()))?;
        Ok((me, true))
    }

    /// Loads the PKCS#8 PEM key at `path`.
    pub fn load(path: &Path) -> Result<Self, LocalError> {
        let pem = std::fs::read_to_string(path).map_err(LocalError::io("reading", path))?;
        let key =
            RsaPrivateKey::from_pkcs8_pem(&pem).map_err(|e| LocalError::Key(e.to_string()))?;
        Ok(SigningKey::from_key(key))
    }

    fn from_key(key: RsaPrivateKey) -> Self {
        let public = RsaPublicKey::from(&key);
        // The key id is derived from the modulus, so it is stable for the key's life.
        let n = public.n().to_bytes_be();
        let kid = format!("local-{}", &URL_SAFE_NO_PAD.encode(&n[..12]));
        SigningKey { key, kid }
    }

    /// The key id (`kid`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWKS (RFC 7517) of this key.
    pub fn jwks(&self) -> Value {
        let public = RsaPublicKey::from(&self.key);
        json!({
            "keys": [{
                "kty": "RSA",
                "use": "sig",
                "alg": "RS256",
                "kid": self.kid,
                "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            }]
        })
    }

    /// A signed RS256 token with the contract's claims.
    pub fn token(&self, claims: &TokenClaims<'_>) -> Result<String, LocalError> {
        self.sign(&claims.to_json(unix_now()))
    }

    /// Signs any claim set (RS256, with this key's `kid`).
    pub fn sign(&self, claims: &Value) -> Result<String, LocalError> {
        let pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| LocalError::Key(e.to_string()))?;
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| LocalError::Key(e.to_string()))?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &encoding).map_err(|e| LocalError::Key(e.to_string()))
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a token says.
#[derive(Debug, Clone)]
pub struct TokenClaims<'a> {
    /// `sub`.
    pub sub: &'a str,
    /// `iss` (the config's `auth.jwt_issuer`).
    pub issuer: &'a str,
    /// `aud` (the config's `auth.jwt_audience`).
    pub audience: &'a str,
    /// Roles (`admin`, `analyst`).
    pub roles: Vec<&'a str>,
    /// Case ids; empty = every case (`"*"`).
    pub cases: Vec<uuid::Uuid>,
    /// Lifetime.
    pub ttl_seconds: u64,
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), LocalError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(LocalError::io("writing", path))?;
    f.write_all(bytes).map_err(LocalError::io("writing", path))
}

impl TokenClaims<'_> {
    /// The claims as JSON, issued at `now`: `sub`, `iss`, `aud`, `iat`, `exp`, the roles
    /// claim and the cases claim (`["*"]` when no case is named).
    pub fn to_json(&self, now: u64) -> Value {
        let cases: Value = if self.cases.is_empty() {
            json!(["*"])
        } else {
            json!(self.cases.iter().map(|c| c.to_string()).collect::<Vec<_>>())
        };
        json!({
            "sub": self.sub,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + self.ttl_seconds,
            ROLES_CLAIM: self.roles,
            CASES_CLAIM: cases,
        })
    }
}
