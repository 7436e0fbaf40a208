//! The settings tier: flags resolved once into library options (auth file read once,
//! credentials parsed once, per side), and the one store cache that every command opens its
//! stores through (one registry client per registry and side; every store marked with its
//! side so errors say where they came from).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ferry::copy::{BlobLedger, LocationCache};
use ferry::creds::{Chain, CredentialSource, DockerConfig, StaticCredentials};
use ferry::error::Side;
use ferry::reference::{ImageRef, LayoutKind, LayoutRef, Tag};
use ferry::store::archive::{ArchiveStore, Compress, DockerArchiveStore, DockerWriter};
use ferry::store::layout::LayoutStore;
use ferry::store::registry::{
    ClientCert, RegistryClient, RegistryOptions, RegistryStore, RetryPolicy,
};
use ferry::store::sided::Sided;
use ferry::store::{Store, Target};
use ferry::{Error, Result};

use super::endpoints::TransportArgs;

/// HTTP or HTTPS for one side, from `--*-plain-http` and `--*-tls` (clap keeps them apart).
#[derive(Clone, Copy)]
enum Scheme {
    /// HTTPS; a loopback host is tried over HTTPS first, then plain HTTP.
    Auto,
    Plain,
    Tls,
}

impl Scheme {
    fn of(plain: bool, tls: bool) -> Scheme {
        match (plain, tls) {
            (true, _) => Scheme::Plain,
            (_, true) => Scheme::Tls,
            _ => Scheme::Auto,
        }
    }
}

/// The upload journal's directory: `$FERRY_CACHE_DIR/uploads`, else
/// `$XDG_CACHE_HOME/ferry/uploads`, else `~/.cache/ferry/uploads`; none without a home.
fn journal_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let cache = env("FERRY_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("ferry")))
        .or_else(|| env("HOME").map(|h| h.join(".cache/ferry")))?;
    Some(cache.join("uploads"))
}

/// Registry options for each side, resolved from the flags.
#[derive(Clone, Debug)]
pub struct TransportSettings {
    source: RegistryOptions,
    destination: RegistryOptions,
}

impl TransportSettings {
    /// Reads the auth file once and parses `--src-creds`/`--dest-creds` once.
    pub fn resolve(args: &TransportArgs) -> Result<Self> {
        let config: Arc<dyn CredentialSource> = Arc::new(match &args.authfile {
            Some(p) => DockerConfig::from_existing_path(p).map_err(|e| match e {
                Error::Credentials { reason } => Error::Credentials {
                    reason: format!("--authfile {reason}"),
                },
                other => other,
            })?,
            None => DockerConfig::load()?,
        });
        let side = |creds: &Option<String>,
                    flag: &str,
                    tls_verify: bool,
                    scheme: Scheme,
                    cert: (&Option<PathBuf>, &Option<PathBuf>)| {
            let credentials: Arc<dyn CredentialSource> = match creds {
                Some(c) => {
                    let given = StaticCredentials::parse(c).map_err(|e| match e {
                        Error::Credentials { reason } => Error::Credentials {
                            reason: format!("{flag}: {reason}"),
                        },
                        other => other,
                    })?;
                    Arc::new(Chain::new().with(given).with_shared(config.clone()))
                }
                None => config.clone(),
            };
            Ok::<_, Error>(RegistryOptions {
                tls_verify,
                plain_http: match scheme {
                    Scheme::Auto => None,
                    Scheme::Plain => Some(true),
                    Scheme::Tls => Some(false),
                },
                ca_file: args.ca_file.clone(),
                certs_dir: Some(args.certs_dir.clone()),
                client_cert: match cert {
                    (Some(cert), Some(key)) => Some(ClientCert {
                        cert: cert.clone(),
                        key: key.clone(),
                    }),
                    _ => None,
                },
                credentials,
                retry: RetryPolicy {
                    max_attempts: args.retries.max(1),
                    max_total: std::time::Duration::from_secs(args.retry_max_time),
                    ..RetryPolicy::default()
                },
                upload_strategy: args.upload_strategy,
                chunk_size: args.chunk_size,
                verify: args.verify,
                rate_limit_reserve: args.rate_limit_reserve,
                monolithic_max: args.resumable_above,
                upload_journal: journal_dir(),
                ..RegistryOptions::default()
            })
        };
        Ok(TransportSettings {
            source: side(
                &args.src_creds,
                "--src-creds",
                args.src_tls_verify,
                Scheme::of(args.src_plain_http, args.src_tls),
                (&args.src_cert_file, &args.src_key_file),
            )?,
            destination: side(
                &args.dest_creds,
                "--dest-creds",
                args.dest_tls_verify,
                Scheme::of(args.dest_plain_http, args.dest_tls),
                (&args.dest_cert_file, &args.dest_key_file),
            )?,
        })
    }

    pub fn options(&self, side: Side) -> &RegistryOptions {
        match side {
            Side::Source => &self.source,
            Side::Destination => &self.destination,
        }
    }
}

/// Opens stores, one registry client per (registry, side), shared by every image.
pub struct Stores {
    settings: TransportSettings,
    clients: Mutex<HashMap<(Side, String), RegistryClient>>,
    /// `ferry tag`: source and destination are one repository: use the destination's client.
    one_side: Option<Side>,
    /// A dry run opens destination layouts read-only (never creates one).
    dry_run: bool,
    /// Whether this command commits destination archives ([`Stores::finish`]); those that
    /// do not are refused an `oci-archive:` destination rather than silently write nothing.
    archive_output: bool,
    /// Destination archives opened, written by [`Stores::finish`].
    archives: Mutex<Vec<Pending>>,
    /// Source archives, indexed once however many images are read from them.
    sources: Mutex<HashMap<(LayoutKind, std::path::PathBuf), Source>>,
    /// Source docker-archives, for what their conversions changed.
    dockers: Mutex<Vec<Arc<DockerArchiveStore>>>,
    /// How a docker-archive source's uncompressed layers leave it.
    compress: Compress,
}

/// A source archive.
#[derive(Clone)]
enum Source {
    Oci(Arc<ArchiveStore>),
    Docker(Arc<DockerArchiveStore>),
}

impl Source {
    fn store(&self) -> Arc<dyn Store> {
        match self {
            Source::Oci(a) => a.clone(),
            Source::Docker(d) => d.clone(),
        }
    }

    /// The image it holds alone (`FILE` without a reference).
    fn only_image(&self) -> Result<Target> {
        match self {
            Source::Oci(a) => a.only_image().map(|d| Target::Digest(d.digest)),
            Source::Docker(d) => d.only_image(),
        }
    }
}

/// A destination archive, written once the command succeeded.
enum Pending {
    Oci(Arc<ArchiveStore>),
    Docker(Arc<DockerWriter>),
}

impl Stores {
    pub fn new(settings: TransportSettings, one_side: Option<Side>, dry_run: bool) -> Self {
        Stores {
            settings,
            clients: Mutex::new(HashMap::new()),
            one_side,
            dry_run,
            archive_output: false,
            archives: Mutex::new(Vec::new()),
            sources: Mutex::new(HashMap::new()),
            dockers: Mutex::new(Vec::new()),
            compress: Compress::None,
        }
    }

    /// Sets how docker-archive sources' uncompressed layers are stored on the way out.
    pub fn with_compress(mut self, compress: Compress) -> Self {
        self.compress = compress;
        self
    }

    /// What reading docker-archive sources changed: (image, new digest, layers, compression).
    pub fn conversions(&self) -> Vec<ferry::store::archive::docker::Conversion> {
        let dockers = self.dockers.lock().unwrap();
        dockers.iter().flat_map(|d| d.conversions()).collect()
    }

    /// Lets destinations be `oci-archive:` files; the command calls [`Stores::finish`] once its
    /// work succeeded.
    pub fn with_archive_output(mut self) -> Self {
        self.archive_output = true;
        self
    }

    /// Writes every destination archive (each by temp file and rename). Not called after a
    /// failure, so a failed copy leaves the archive file as it was.
    pub async fn finish(&self) -> Result<()> {
        let archives: Vec<Pending> = self.archives.lock().unwrap().drain(..).collect();
        for a in archives {
            match a {
                Pending::Oci(a) => a.commit().await?,
                Pending::Docker(a) => a.commit().await?,
            }
        }
        Ok(())
    }

    /// Every registry client opened so far, with its side and registry name.
    pub fn clients(&self) -> Vec<(Side, String, RegistryClient)> {
        let clients = self.clients.lock().unwrap();
        clients
            .iter()
            .map(|((side, name), c)| (*side, name.clone(), c.clone()))
            .collect()
    }

    /// The client of `registry` for `side` (one per registry and side).
    pub fn client(&self, registry: &str, side: Side) -> Result<RegistryClient> {
        let side = self.one_side.unwrap_or(side);
        let key = (side, registry.to_string());
        let mut clients = self.clients.lock().unwrap();
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let c = RegistryClient::new(registry, self.settings.options(side).clone())?;
        clients.insert(key, c.clone());
        Ok(c)
    }

    /// The store behind a reference, marked with `side`, and the manifest target it names.
    pub fn open(&self, r: &ImageRef, side: Side) -> Result<(Arc<dyn Store>, Target)> {
        let (store, target) = self.open_unmarked(r, side, false)?;
        Ok((Sided::wrap(store, side), target))
    }

    /// The store of a command that works on one store (`digest`, `inspect`, `ls`, `delete`):
    /// no side to name in errors, source credentials (the same flags fill both), and a layout
    /// that must exist.
    pub fn open_one(&self, r: &ImageRef) -> Result<(Arc<dyn Store>, Target)> {
        self.open_unmarked(r, Side::Source, true)
    }

    /// `one`: a command on one store (`ls` lists an archive of several images, so `FILE` alone
    /// falls back to `latest` there instead of being refused).
    fn open_unmarked(
        &self,
        r: &ImageRef,
        side: Side,
        one: bool,
    ) -> Result<(Arc<dyn Store>, Target)> {
        let (store, target): (Arc<dyn Store>, Target) = match r {
            ImageRef::Registry(rr) => {
                let client = self.client(&rr.registry, side)?;
                let target = target_of(rr.digest.as_ref(), rr.tag.as_deref());
                (Arc::new(RegistryStore::new(client, &rr.repository)), target)
            }
            ImageRef::Layout(l) if l.kind != LayoutKind::Directory => {
                self.open_archive(l, side, one)?
            }
            ImageRef::Layout(l) => {
                let store = match side {
                    Side::Destination if self.dry_run => {
                        if !l.path.exists() {
                            return Err(Error::Usage {
                                arg: "--dry-run".into(),
                                reason: format!(
                                    "the destination layout {} does not exist yet (everything would be copied); a dry run creates nothing",
                                    l.path.display()
                                ),
                            });
                        }
                        LayoutStore::open(&l.path)?
                    }
                    Side::Source => LayoutStore::open(&l.path)?,
                    Side::Destination => LayoutStore::create(&l.path)?,
                };
                let target = target_of(l.digest.as_ref(), l.tag.as_deref());
                (Arc::new(store), target)
            }
        };
        Ok((store, target))
    }

    /// An `oci-archive:` file: read in place; written by [`Stores::finish`] (blobs stream
    /// into it as they are copied). `FILE` alone, as a source, is its only image.
    fn open_archive(
        &self,
        l: &LayoutRef,
        side: Side,
        one: bool,
    ) -> Result<(Arc<dyn Store>, Target)> {
        let writing = side == Side::Destination && !self.dry_run;
        if writing && !self.archive_output {
            return Err(Error::Usage {
                arg: l.to_string(),
                reason: "this command cannot write an oci-archive: destination (ferry copy can)"
                    .into(),
            });
        }
        if !writing {
            let source = self.source_archive(l)?;
            let store = source.store();
            let target = match (&l.digest, &l.tag) {
                (None, None) => match source.only_image() {
                    Ok(t) => t,
                    Err(_) if one => Target::Tag("latest".into()),
                    Err(e) => return Err(e),
                },
                (d, t) => target_of(d.as_ref(), t.as_deref()),
            };
            return Ok((store, target));
        }
        if l.kind == LayoutKind::DockerArchive {
            let name = match l.tag.as_deref() {
                Some(r) if !r.starts_with('@') => {
                    let rr: ferry::reference::RegistryRef = r.parse()?;
                    Some(docker_name(&rr))
                }
                _ => None,
            };
            let target = match l.tag.as_deref() {
                Some(r) if !r.starts_with('@') => Target::Tag(r.to_string()),
                _ => Target::Tag("latest".into()),
            };
            let store = Arc::new(DockerWriter::create(&l.path, name)?);
            self.archives
                .lock()
                .unwrap()
                .push(Pending::Docker(store.clone()));
            let store: Arc<dyn Store> = store;
            return Ok((store, target));
        }
        let store = Arc::new(ArchiveStore::create(&l.path)?);
        self.archives
            .lock()
            .unwrap()
            .push(Pending::Oci(store.clone()));
        let store: Arc<dyn Store> = store;
        Ok((store, target_of(l.digest.as_ref(), l.tag.as_deref())))
    }

    /// A source archive, opened (indexed) once per path.
    fn source_archive(&self, l: &LayoutRef) -> Result<Source> {
        let key = (l.kind, l.path.clone());
        if let Some(s) = self.sources.lock().unwrap().get(&key) {
            return Ok(s.clone());
        }
        let source = if l.kind == LayoutKind::DockerArchive {
            let d = Arc::new(DockerArchiveStore::open(&l.path, self.compress)?);
            self.dockers.lock().unwrap().push(d.clone());
            Source::Docker(d)
        } else {
            Source::Oci(Arc::new(ArchiveStore::open(&l.path)?))
        };
        self.sources.lock().unwrap().insert(key, source.clone());
        Ok(source)
    }
}

/// `NAME` as a docker-archive's `RepoTags` write it: Docker Hub names in their short form.
pub fn docker_name(r: &ferry::reference::RegistryRef) -> String {
    if r.registry == "docker.io" {
        r.repository
            .strip_prefix("library/")
            .unwrap_or(&r.repository)
            .to_string()
    } else {
        format!("{}/{}", r.registry, r.repository)
    }
}

/// The digest wins over the tag; neither means `latest`.
fn target_of(digest: Option<&ferry::Digest>, tag: Option<&str>) -> Target {
    match (digest, tag) {
        (Some(d), _) => Target::Digest(d.clone()),
        (None, Some(t)) => Target::Tag(t.to_string()),
        (None, None) => Target::Tag("latest".into()),
    }
}

/// A tag given on the command line, checked once by clap (`value_parser`).
pub fn parse_tag(s: &str) -> std::result::Result<Tag, String> {
    s.parse()
}

/// Tags as the library takes them.
pub fn tag_names(tags: &[Tag]) -> Vec<String> {
    tags.iter().map(Tag::to_string).collect()
}

/// Parses a reference given on the command line.
pub fn parse_ref(s: &str) -> Result<ImageRef> {
    s.parse::<ImageRef>().map_err(Error::from)
}

/// Parses `text` and opens its store for a command that works on one store.
pub fn open_single(
    text: &str,
    access: &super::endpoints::AccessArgs,
) -> Result<(ImageRef, Arc<dyn Store>, Target)> {
    let r = parse_ref(text)?;
    let stores = Stores::new(
        TransportSettings::resolve(&access.transport())?,
        None,
        false,
    );
    let (store, target) = stores.open_one(&r)?;
    Ok((r, store, target))
}

/// The blob ledger of one run: backed by the persistent blob-location cache unless
/// `--no-cache` (or `FERRY_NO_CACHE`) says not to, or no cache directory can be named.
pub fn run_ledger(args: &TransportArgs) -> Arc<BlobLedger> {
    match (args.no_cache, LocationCache::default_dir()) {
        (false, Some(dir)) => Arc::new(BlobLedger::with_cache(LocationCache::open(dir.as_path()))),
        _ => Arc::new(BlobLedger::default()),
    }
}

/// Saves what the run learned into the blob-location cache. A cache that cannot be written
/// costs later runs a mount, never this run its result: the failure is logged, not returned.
pub fn save_ledger(ledger: &BlobLedger) {
    if let Err(e) = ledger.save() {
        tracing::warn!(error = %e, "the blob-location cache was not saved");
    }
}
/// Whether a destination reference writes an archive onto standard output (`FILE` `-`).
pub fn writes_stdout(r: &ImageRef) -> bool {
    matches!(r, ImageRef::Layout(l) if l.kind != LayoutKind::Directory && l.path.as_os_str() == "-")
}

/// The sentence that says a docker-archive image got a new digest.
pub fn conversion_note(c: &ferry::store::archive::docker::Conversion) -> String {
    format!(
        "{}: {} uncompressed layer(s) compressed with {} on the way out of the docker-archive, so the layer and manifest digests are new (manifest {})",
        c.image, c.layers, c.compress, c.digest
    )
}
