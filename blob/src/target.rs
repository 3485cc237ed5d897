//! Where the blobs go and with which credentials: the policy file's `[blob]` section (DESIGN §9).
//!
//! URL forms:
//! * `https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]` (any host-style endpoint: the
//!   account is the first DNS label);
//! * `az://CONTAINER[/PREFIX]` (also `azure://`), the account from the connection string or
//!   `AZURE_STORAGE_ACCOUNT_NAME`;
//! * with `use_emulator = true`, path-style `http://HOST:PORT/ACCOUNT/CONTAINER[/PREFIX]` (Azurite).
//!
//! Credentials, the first that is present: `account_key_file`, `sas_token_file`,
//! `connection_string_file`, the `AZURE_*` environment (object_store reads
//! `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_SAS_TOKEN`, `AZURE_CLIENT_ID`/`SECRET`/`TENANT_ID`,
//! `AZURE_FEDERATED_TOKEN_FILE`, ...), then managed identity. With `use_emulator` and nothing
//! given, the emulator's public well-known key.
//!
//! Secrets are read from files at open time and never printed: `TargetSpec`'s `Debug` shows file
//! names only (and strips any query string from the URL), and every error message is scrubbed.

use std::path::Path;

use crate::error::Error;

/// The emulator's well-known account key (public; documented by Microsoft).
pub const EMULATOR_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A blob target as configured: defined with the policy file's `[blob]` section, so its fields
/// and their redacting `Debug` exist once.
pub use lustre_blob_config::TargetSpec;

/// How requests are authorised.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    Key(String),
    Sas(String),
    /// object_store's own resolution: AZURE_* environment, then managed identity.
    Environment,
}

/// A spec resolved to endpoint, container, prefix and credential.
#[derive(Clone)]
pub(crate) struct Resolved {
    pub account: String,
    /// Account endpoint: `https://ACCOUNT.blob.core.windows.net` or `http://HOST:PORT/ACCOUNT`.
    pub endpoint: String,
    pub container: String,
    pub prefix: String,
    pub credential: Credential,
    /// Every secret string, to scrub from messages.
    pub secrets: Vec<String>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cred = match self.credential {
            Credential::Key(_) => "account key",
            Credential::Sas(_) => "SAS token",
            Credential::Environment => "environment / managed identity",
        };
        f.debug_struct("Resolved")
            .field("account", &self.account)
            .field("endpoint", &self.endpoint)
            .field("container", &self.container)
            .field("prefix", &self.prefix)
            .field("credential", &cred)
            .finish()
    }
}

/// A parsed connection string (`Key=Value;...`).
#[derive(Default)]
struct ConnString {
    account: Option<String>,
    key: Option<String>,
    sas: Option<String>,
    blob_endpoint: Option<String>,
    protocol: Option<String>,
    suffix: Option<String>,
    dev: bool,
}

fn parse_conn_string(text: &str) -> ConnString {
    let mut c = ConnString::default();
    for part in text.trim().split(';') {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        let v = v.trim().to_string();
        match k.trim().to_ascii_lowercase().as_str() {
            "accountname" => c.account = Some(v),
            "accountkey" => c.key = Some(v),
            "sharedaccesssignature" => c.sas = Some(v),
            "blobendpoint" => c.blob_endpoint = Some(v.trim_end_matches('/').to_string()),
            "defaultendpointsprotocol" => c.protocol = Some(v),
            "endpointsuffix" => c.suffix = Some(v),
            "usedevelopmentstorage" => c.dev = v.eq_ignore_ascii_case("true"),
            _ => {}
        }
    }
    c
}

fn read_secret(path: &Path, what: &str) -> Result<String, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read {what} file {}: {e}", path.display())))?;
    let text = text.trim().to_string();
    if text.is_empty() {
        return Err(Error::Config(format!(
            "{what} file {} is empty",
            path.display()
        )));
    }
    Ok(text)
}

/// `%XX` sequences decoded (others kept as written), as UTF-8.
fn percent_decode(s: &str) -> Result<String, Error> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| Error::Config(format!("URL path {s:?} is not UTF-8 once decoded")))
}

/// Splits `CONTAINER[/PREFIX]` (percent-decoded; trailing `/` ignored).
fn container_and_prefix(path: &str) -> Result<(String, String), Error> {
    let path = path.trim_matches('/');
    let (c, p) = path.split_once('/').unwrap_or((path, ""));
    if c.is_empty() {
        return Err(Error::Config("blob URL names no container".into()));
    }
    let prefix = percent_decode(p)?;
    let prefix = prefix.trim_end_matches('/').to_string();
    if !prefix.is_empty() {
        crate::name::BlobName::new(&prefix)
            .map_err(|e| Error::Config(format!("blob prefix: {e}")))?;
    }
    Ok((percent_decode(c)?, prefix))
}

/// Resolves `spec` to endpoint, container, prefix and credential (reading credential files).
pub(crate) fn resolve(spec: &TargetSpec) -> Result<Resolved, Error> {
    let conn = match &spec.connection_string_file {
        Some(p) => Some(parse_conn_string(&read_secret(p, "connection string")?)),
        None => None,
    };
    // The query (a SAS token, perhaps) never goes into a message.
    let url = url::Url::parse(&spec.url).map_err(|e| {
        Error::Config(format!(
            "blob URL {:?}: {e}",
            lustre_blob_config::redact_query(&spec.url)
        ))
    })?;
    let scheme = url.scheme();
    let (account, endpoint, container, prefix);
    match scheme {
        "az" | "azure" => {
            // `az://CONTAINER/PREFIX`: the container is the URL's host.
            let (c, p) =
                container_and_prefix(&format!("{}{}", url.host_str().unwrap_or(""), url.path()))?;
            let acct = conn
                .as_ref()
                .and_then(|c| c.account.clone())
                .or_else(|| std::env::var("AZURE_STORAGE_ACCOUNT_NAME").ok())
                .or_else(|| conn.as_ref().filter(|c| c.dev).map(|_| "devstoreaccount1".to_string()))
                .ok_or_else(|| {
                    Error::Config(format!(
                        "{scheme}:// URL needs an account: AZURE_STORAGE_ACCOUNT_NAME or a connection string"
                    ))
                })?;
            endpoint = match conn.as_ref() {
                Some(ConnString {
                    blob_endpoint: Some(e),
                    ..
                }) => e.clone(),
                Some(ConnString { dev: true, .. }) => format!("http://127.0.0.1:10000/{acct}"),
                Some(ConnString {
                    protocol, suffix, ..
                }) => format!(
                    "{}://{acct}.blob.{}",
                    protocol.as_deref().unwrap_or("https"),
                    suffix.as_deref().unwrap_or("core.windows.net")
                ),
                None => format!("https://{acct}.blob.core.windows.net"),
            };
            account = acct;
            container = c;
            prefix = p;
        }
        "http" | "https" => {
            let Some(hostname) = url.host_str().filter(|h| !h.is_empty()) else {
                return Err(Error::Config("blob URL has no host".into()));
            };
            let host = match url.port() {
                Some(port) => format!("{hostname}:{port}"),
                None => hostname.to_string(),
            };
            let path = url.path();
            if spec.use_emulator {
                let path = path.trim_start_matches('/');
                let (acct, rest) = path.split_once('/').unwrap_or((path, ""));
                if acct.is_empty() {
                    return Err(Error::Config(
                        "emulator URL must be http://HOST:PORT/ACCOUNT/CONTAINER[/PREFIX]".into(),
                    ));
                }
                let (c, p) = container_and_prefix(rest)?;
                endpoint = format!("{scheme}://{host}/{acct}");
                account = acct.to_string();
                container = c;
                prefix = p;
            } else {
                let acct = hostname.split('.').next().unwrap_or("");
                let is_name = matches!(url.host(), Some(url::Host::Domain(_)));
                if acct.is_empty() || !hostname.contains('.') || !is_name {
                    return Err(Error::Config(format!(
                        "blob URL host {host:?} is not ACCOUNT.blob.<suffix>; set use_emulator for path-style URLs"
                    )));
                }
                let (c, p) = container_and_prefix(path)?;
                endpoint = format!("{scheme}://{host}");
                account = acct.to_string();
                container = c;
                prefix = p;
            }
        }
        other => {
            return Err(Error::Config(format!(
                "blob URL scheme {other:?} not supported (https, az, or http with use_emulator)"
            )))
        }
    }

    let mut secrets = Vec::new();
    let credential = if let Some(p) = &spec.account_key_file {
        Credential::Key(read_secret(p, "account key")?)
    } else if let Some(p) = &spec.sas_token_file {
        Credential::Sas(read_secret(p, "SAS token")?)
    } else if let Some(c) = conn.as_ref().filter(|c| c.key.is_some() || c.sas.is_some()) {
        match (&c.key, &c.sas) {
            (Some(k), _) => Credential::Key(k.clone()),
            (None, Some(s)) => Credential::Sas(s.clone()),
            (None, None) => Credential::Environment,
        }
    } else if conn.as_ref().is_some_and(|c| c.dev) || (spec.use_emulator && !env_has_credentials())
    {
        Credential::Key(EMULATOR_KEY.to_string())
    } else {
        Credential::Environment
    };
    match &credential {
        Credential::Key(k) => secrets.push(k.clone()),
        Credential::Sas(s) => {
            let s = s.trim_start_matches('?');
            secrets.push(s.to_string());
            for pair in s.split('&') {
                if let Some((_, v)) = pair.split_once('=') {
                    if v.len() >= 8 {
                        secrets.push(v.to_string());
                        secrets.push(percent_decode(v).unwrap_or_default());
                    }
                }
            }
        }
        Credential::Environment => {
            for var in [
                "AZURE_STORAGE_ACCOUNT_KEY",
                "AZURE_STORAGE_SAS_TOKEN",
                "AZURE_CLIENT_SECRET",
            ] {
                if let Ok(v) = std::env::var(var) {
                    secrets.push(v);
                }
            }
        }
    }
    secrets.retain(|s| s.len() >= 8);
    Ok(Resolved {
        account,
        endpoint,
        container,
        prefix,
        credential,
        secrets,
    })
}

fn env_has_credentials() -> bool {
    [
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
        "AZURE_STORAGE_ACCESS_KEY",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests read best as `spec.resolve()`.
    trait Resolve {
        fn resolve(&self) -> Result<Resolved, Error>;
    }

    impl Resolve for TargetSpec {
        fn resolve(&self) -> Result<Resolved, Error> {
            super::resolve(self)
        }
    }

    #[test]
    fn https_host_style() {
        let r = TargetSpec::new("https://acct.blob.core.windows.net/cont/pre/fix/")
            .resolve()
            .unwrap();
        assert_eq!(r.account, "acct");
        assert_eq!(r.endpoint, "https://acct.blob.core.windows.net");
        assert_eq!(r.container, "cont");
        assert_eq!(r.prefix, "pre/fix");
        let r = TargetSpec::new("https://acct.blob.core.windows.net/cont")
            .resolve()
            .unwrap();
        assert_eq!(r.prefix, "");
        let r = TargetSpec::new("https://acct.blob.core.windows.net/cont/a%20b")
            .resolve()
            .unwrap();
        assert_eq!(r.prefix, "a b");
    }

    #[test]
    fn emulator_path_style() {
        let mut s = TargetSpec::new("http://127.0.0.1:10123/devstoreaccount1/lustre-export/p");
        s.use_emulator = true;
        let r = s.resolve().unwrap();
        assert_eq!(r.account, "devstoreaccount1");
        assert_eq!(r.endpoint, "http://127.0.0.1:10123/devstoreaccount1");
        assert_eq!(r.container, "lustre-export");
        assert_eq!(r.prefix, "p");
        if !env_has_credentials() {
            assert!(r.credential == Credential::Key(EMULATOR_KEY.into()));
        }
        s.use_emulator = false;
        assert!(matches!(s.resolve(), Err(Error::Config(_))));
    }

    #[test]
    fn az_scheme_with_connection_string_and_credential_order() {
        let dir = tempfile::tempdir().unwrap();
        let cs = dir.path().join("cs");
        std::fs::write(&cs, "DefaultEndpointsProtocol=https;AccountName=csacct;AccountKey=c2VjcmV0a2V5c2VjcmV0a2V5;EndpointSuffix=core.windows.net").unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "a2V5ZmlsZWtleWZpbGU=\n").unwrap();
        let sas = dir.path().join("sas");
        std::fs::write(&sas, "?sv=2022-11-02&sig=c2lnbmF0dXJlc2lnbmF0dXJl").unwrap();

        let mut s = TargetSpec::new("az://cont/deep/prefix");
        s.connection_string_file = Some(cs.clone());
        let r = s.resolve().unwrap();
        assert_eq!(
            (r.account.as_str(), r.container.as_str(), r.prefix.as_str()),
            ("csacct", "cont", "deep/prefix")
        );
        assert_eq!(r.endpoint, "https://csacct.blob.core.windows.net");
        assert!(r.credential == Credential::Key("c2VjcmV0a2V5c2VjcmV0a2V5".into()));

        s.sas_token_file = Some(sas.clone());
        assert!(matches!(
            s.resolve().unwrap().credential,
            Credential::Sas(_)
        ));
        let r = s.resolve().unwrap();
        assert!(r.secrets.iter().any(|x| x == "c2lnbmF0dXJlc2lnbmF0dXJl"));
        s.account_key_file = Some(key.clone());
        assert!(s.resolve().unwrap().credential == Credential::Key("a2V5ZmlsZWtleWZpbGU=".into()));
    }

    #[test]
    fn debug_and_errors_never_show_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "U1VQRVJTRUNSRVRLRVk=").unwrap();
        let mut s = TargetSpec::new("https://acct.blob.core.windows.net/c?sv=1&sig=TOPSECRETSIG");
        s.account_key_file = Some(key.clone());
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("TOPSECRETSIG"), "{dbg}");
        assert!(!dbg.contains("U1VQRVJTRUNSRVRLRVk="), "{dbg}");
        let r = s.resolve().unwrap();
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("U1VQRVJTRUNSRVRLRVk="), "{dbg}");
        let bad = TargetSpec {
            url: "ftp://x/y?sig=TOPSECRETSIG".into(),
            ..s.clone()
        };
        let msg = bad.resolve().unwrap_err().to_string();
        assert!(!msg.contains("TOPSECRETSIG"), "{msg}");
    }

    #[test]
    fn a_percent_sequence_at_the_very_end_of_the_prefix_is_decoded() {
        // The hand-written decoder this replaced left a final `%41` undecoded.
        assert_eq!(
            container_and_prefix("c/a%20b%41").unwrap(),
            ("c".to_string(), "a bA".to_string())
        );
        assert_eq!(percent_decode("50%").unwrap(), "50%", "a lone % is kept");
    }

    #[test]
    fn refusals() {
        for u in [
            "nourl",
            "https://acct.blob.core.windows.net/",
            "https://localhost/c",
            "s3://b/p",
        ] {
            assert!(
                matches!(TargetSpec::new(u).resolve(), Err(Error::Config(_))),
                "{u}"
            );
        }
        let mut s = TargetSpec::new("https://a.blob.core.windows.net/c");
        s.account_key_file = Some("/nonexistent/key/file".into());
        assert!(matches!(s.resolve(), Err(Error::Config(_))));
    }
}
