//! Repository objects on S3-compatible storage.
//!
//! A repository directory may keep its objects (config, keys, packs,
//! manifests) in a bucket instead of beside its index: `objects.json` in the
//! directory names the bucket. Everything that opens a repository by its
//! directory (the CLI, the vault server, the SBT library's `ORCA_REPO`) then
//! reads and writes the bucket, and the directory holds only what is local by
//! nature: the SQLite index (rebuildable from the bucket) and the vault's
//! records. With `"index": {"url": "postgresql://..."}` the index (and the
//! vault's records) is a PostgreSQL database instead, which several servers
//! share. Credentials never go into the file; they come from the usual
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`
//! variables, a web identity or the instance metadata service.

use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::prefix::PrefixStore;
use object_store::signer::Signer;
use serde::{Deserialize, Serialize};

use crate::error::{RepoError, Result};

/// The file in a repository directory that sends its objects to a bucket.
pub const REMOTE_FILE: &str = "objects.json";

/// Where a repository's objects live when not in its directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteObjects {
    /// `s3://BUCKET` or `s3://BUCKET/PREFIX`.
    pub url: String,
    /// Endpoint of an S3-compatible server (`http://host:port`); AWS when
    /// absent. `AWS_ENDPOINT` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Region; `AWS_REGION` / `AWS_DEFAULT_REGION` override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `bucket.host` addressing instead of `host/bucket` (path style, what
    /// most S3-compatible servers expect).
    #[serde(default)]
    pub virtual_hosted: bool,
    /// A JSON file `{"access_key_id": ..., "secret_access_key": ...,
    /// "session_token": ...}` (mode 0600) holding the credentials, for a
    /// service that should not carry them in its environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<std::path::PathBuf>,
    /// Access key id and secret given by a program (never written to the
    /// file); the environment's credentials otherwise.
    #[serde(skip)]
    pub credentials: Option<(String, String)>,
    /// A PostgreSQL index shared by every server on this bucket, instead of
    /// the directory's own SQLite file (which each server would fill on its
    /// own and never see the others' pieces in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<crate::index::PgConfig>,
}

#[derive(Deserialize)]
struct CredentialsFile {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
}

/// Whether the environment gives S3 credentials some way object_store understands: static
/// keys, a web identity (EKS), a container endpoint (ECS), or else an instance metadata
/// service that answers. Without this check a host with none of them would start serving
/// and fail on its first request after four slow retries, with no hint of the cause.
fn credentials_from_env(env: &dyn Fn(&str) -> Option<String>, metadata: &dyn Fn() -> bool) -> bool {
    let set = |k: &str| env(k).is_some_and(|v| !v.is_empty());
    if set("AWS_ACCESS_KEY_ID")
        || set("AWS_WEB_IDENTITY_TOKEN_FILE")
        || set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        || set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    {
        return true;
    }
    let disabled = env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    !disabled && metadata()
}

/// Whether the EC2 instance metadata service (169.254.169.254:80) accepts a connection.
fn metadata_service_answers() -> bool {
    let addr = std::net::SocketAddr::from(([169, 254, 169, 254], 80));
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(500)).is_ok()
}

impl RemoteObjects {
    /// Parse `s3://BUCKET[/PREFIX]` into (bucket, prefix).
    pub fn bucket_and_prefix(&self) -> Result<(String, String)> {
        let rest = self.url.strip_prefix("s3://").ok_or_else(|| {
            RepoError::InvalidArgument(format!(
                "object location {:?} is not an s3:// URL: give s3://BUCKET or s3://BUCKET/PREFIX",
                self.url
            ))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(RepoError::InvalidArgument(format!(
                "object location {:?} names no bucket: give s3://BUCKET or s3://BUCKET/PREFIX",
                self.url
            )));
        }
        Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
    }

    /// The object store, configured from this file then the environment.
    pub fn objects(&self) -> Result<Arc<dyn ObjectStore>> {
        let (s3, prefix) = self.s3()?;
        Ok(if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix.as_str()))
        })
    }

    /// Whether the bucket exists and these credentials may use it.
    pub async fn bucket_exists(&self) -> Result<bool> {
        let answer = self.bucket_request(reqwest::Method::HEAD, None).await?;
        match answer.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            403 => Err(RepoError::InvalidArgument(format!(
                "the credentials may not use the bucket of {} (403): give credentials of its owner",
                self.url
            ))),
            n => Err(self.bucket_refused("look up", n, answer).await),
        }
    }

    /// Creates the bucket (`orca repo init --create-bucket`): whether it was created, false
    /// when these credentials already own it. A bucket another account owns is an error.
    pub async fn create_bucket(&self) -> Result<bool> {
        let region = self.region.clone().or_else(|| {
            std::env::var("AWS_REGION")
                .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                .ok()
        });
        // Outside us-east-1, AWS wants the region said in the body as well.
        let body = region.filter(|r| r != "us-east-1").map(|r| {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{r}</LocationConstraint></CreateBucketConfiguration>"
            )
        });
        let answer = self.bucket_request(reqwest::Method::PUT, body).await?;
        let status = answer.status().as_u16();
        if status == 200 {
            return Ok(true);
        }
        let text = answer.text().await.unwrap_or_default();
        if text.contains("BucketAlreadyOwnedByYou") {
            return Ok(false);
        }
        if text.contains("BucketAlreadyExists") {
            return Err(RepoError::InvalidArgument(format!(
                "the bucket of {} belongs to another account: pick another bucket name",
                self.url
            )));
        }
        Err(RepoError::InvalidArgument(format!(
            "cannot create the bucket of {} (HTTP {status}): {}",
            self.url,
            text.trim()
        )))
    }

    /// Deletes the bucket, which must be empty: what a failed `repo init --create-bucket`
    /// takes back.
    pub async fn delete_bucket(&self) -> Result<()> {
        let answer = self.bucket_request(reqwest::Method::DELETE, None).await?;
        match answer.status().as_u16() {
            200 | 204 | 404 => Ok(()),
            n => Err(self.bucket_refused("delete", n, answer).await),
        }
    }

    /// A request on the bucket itself (not an object in it), signed as the object store
    /// signs its own: object_store has no bucket operations.
    async fn bucket_request(
        &self,
        method: reqwest::Method,
        body: Option<String>,
    ) -> Result<reqwest::Response> {
        let (s3, _) = self.s3()?;
        let root = object_store::path::Path::from("");
        let url = s3
            .signed_url(method.clone(), &root, std::time::Duration::from_secs(300))
            .await
            .map_err(|e| RepoError::storage(self.url.clone(), e))?;
        // S3 servers want a Content-Length on PUT, which an empty body does not get by itself.
        let body = body.unwrap_or_default();
        reqwest::Client::new()
            .request(method, url)
            .header(reqwest::header::CONTENT_LENGTH, body.len())
            .body(body)
            .send()
            .await
            .map_err(|e| {
                RepoError::InvalidArgument(format!(
                    "cannot reach the S3 server of {}: {e}",
                    self.url
                ))
            })
    }

    async fn bucket_refused(
        &self,
        what: &str,
        status: u16,
        answer: reqwest::Response,
    ) -> RepoError {
        let text = answer.text().await.unwrap_or_default();
        RepoError::InvalidArgument(format!(
            "cannot {what} the bucket of {} (HTTP {status}): {}",
            self.url,
            text.trim()
        ))
    }

    /// The S3 client for the bucket, configured from this file then the environment, and
    /// the prefix under which the repository's objects are.
    fn s3(&self) -> Result<(AmazonS3, String)> {
        let (bucket, prefix) = self.bucket_and_prefix()?;
        // reqwest is built without a bundled TLS provider: ring is the one the
        // rest of ORCA uses. A second install attempt is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = AmazonS3Builder::new();
        if let Some(e) = &self.endpoint {
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
        }
        if let Some(r) = &self.region {
            b = b.with_region(r);
        }
        b = b.with_virtual_hosted_style_request(self.virtual_hosted);
        if let Some(path) = &self.credentials_file {
            let c: CredentialsFile = crate::read_secret_file(path, "the S3 credentials file")
                .and_then(|raw| {
                    serde_json::from_slice(&raw).map_err(|e| {
                        RepoError::InvalidArgument(format!(
                            "{} is not an S3 credentials file ({e}): expected {{\"access_key_id\": ..., \"secret_access_key\": ...}}",
                            path.display()
                        ))
                    })
                })?;
            b = b
                .with_access_key_id(c.access_key_id)
                .with_secret_access_key(c.secret_access_key);
            if let Some(t) = c.session_token {
                b = b.with_token(t);
            }
        }
        if let Some((id, secret)) = &self.credentials {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
        }
        let given = self.credentials_file.is_some() || self.credentials.is_some();
        if !given && !credentials_from_env(&|k| std::env::var(k).ok(), &metadata_service_answers) {
            return Err(RepoError::InvalidArgument(format!(
                "no S3 credentials for {}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give \
                 a credentials file with --s3-credentials-file (`orca repo init` / `orca repo attach`; \
                 credentials_file in {REMOTE_FILE}); no instance metadata service answers here for an instance role",
                self.url
            )));
        }
        // The environment wins over the file, as for every AWS tool.
        for (k, v) in std::env::vars() {
            if k.starts_with("AWS_")
                && let Ok(key) = k.to_ascii_lowercase().parse()
            {
                b = b.with_config(key, v);
            }
        }
        let s3 = b
            .with_bucket_name(&bucket)
            .build()
            .map_err(|e| RepoError::storage(self.url.clone(), e))?;
        Ok((s3, prefix))
    }

    /// The remote named in `dir`, if any.
    pub fn read(dir: &Path) -> Result<Option<RemoteObjects>> {
        let path = dir.join(REMOTE_FILE);
        let raw = match std::fs::read(&path) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RepoError::io(format!("cannot read {}", path.display()), e)),
        };
        let r: RemoteObjects = serde_json::from_slice(&raw).map_err(|e| {
            RepoError::InvalidArgument(format!(
                "{} is not a valid object location ({e}): expected {{\"url\": \"s3://BUCKET/PREFIX\", \"endpoint\": ...}}",
                path.display()
            ))
        })?;
        r.bucket_and_prefix()?;
        Ok(Some(r))
    }

    /// Record this remote in `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> Result<()> {
        self.bucket_and_prefix()?;
        std::fs::create_dir_all(dir)
            .map_err(|e| RepoError::io(format!("cannot create {}", dir.display()), e))?;
        let path = dir.join(REMOTE_FILE);
        let body =
            serde_json::to_vec_pretty(self).map_err(|e| RepoError::json("objects.json", e))?;
        std::fs::write(&path, body)
            .map_err(|e| RepoError::io(format!("cannot write {}", path.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_keys_identity_container_or_a_metadata_service_that_answers() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| (*v).to_string())
            }
        };
        let up = || true;
        let down = || false;
        assert!(credentials_from_env(
            &env(&[("AWS_ACCESS_KEY_ID", "AK")]),
            &down
        ));
        assert!(credentials_from_env(
            &env(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")]),
            &down
        ));
        assert!(credentials_from_env(
            &env(&[("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2")]),
            &down
        ));
        assert!(credentials_from_env(&env(&[]), &up));
        assert!(!credentials_from_env(&env(&[]), &down));
        assert!(!credentials_from_env(
            &env(&[("AWS_ACCESS_KEY_ID", "")]),
            &down
        ));
        assert!(!credentials_from_env(
            &env(&[("AWS_EC2_METADATA_DISABLED", "true")]),
            &up
        ));
    }

    #[test]
    fn urls_parse_and_bad_ones_are_named() {
        let r = |u: &str| RemoteObjects {
            url: u.into(),
            endpoint: None,
            region: None,
            virtual_hosted: false,
            credentials_file: None,
            credentials: None,
            index: None,
        };
        assert_eq!(
            r("s3://b/p/q/").bucket_and_prefix().unwrap(),
            ("b".into(), "p/q".into())
        );
        assert_eq!(
            r("s3://b").bucket_and_prefix().unwrap(),
            ("b".into(), "".into())
        );
        let e = r("/data/x").bucket_and_prefix().unwrap_err().to_string();
        assert!(e.contains("not an s3:// URL"), "{e}");
        let e = r("s3:///p").bucket_and_prefix().unwrap_err().to_string();
        assert!(e.contains("names no bucket"), "{e}");
    }

    #[test]
    fn the_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RemoteObjects::read(dir.path()).unwrap(), None);
        let r = RemoteObjects {
            url: "s3://orca/site1".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: Some("eu-west-1".into()),
            virtual_hosted: false,
            credentials_file: None,
            credentials: None,
            index: None,
        };
        r.write(dir.path()).unwrap();
        let raw = std::fs::read_to_string(dir.path().join(REMOTE_FILE)).unwrap();
        assert!(!raw.contains("never") && !raw.contains("written"), "{raw}");
        let back = RemoteObjects::read(dir.path()).unwrap().unwrap();
        assert_eq!(
            back,
            RemoteObjects {
                credentials: None,
                ..r
            }
        );
        std::fs::write(dir.path().join(REMOTE_FILE), "{").unwrap();
        let e = RemoteObjects::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a valid object location"), "{e}");
    }
}
