//! Benchmark driver for `scripts/bench` (see BENCHMARKS.md): our uploader, and a raw object_store
//! ceiling, against an emulator endpoint. Each measuring subcommand prints one number.
//!
//! ```text
//! blob_bench create-container --endpoint http://127.0.0.1:PORT/devstoreaccount1 --name C
//! blob_bench gen-large --file PATH --size BYTES
//! blob_bench gen-small --dir DIR --count N --size BYTES
//! blob_bench ours-large --endpoint E --container C --file PATH [--block-size B] [--in-flight N] [--name BLOB]  # MB/s
//! blob_bench ours-small --endpoint E --container C --dir DIR [--concurrency N] [--as plain|copytool] # files/s
//! blob_bench raw-large  --endpoint E --container C --size BYTES [--block-size B] [--in-flight N] [--name BLOB]  # MB/s
//! blob_bench raw-small  --endpoint E --container C --count N --size BYTES [--concurrency N]       # files/s
//! blob_bench seed-tree  --endpoint E --container C --dir DIR [--concurrency N]                     # files/s
//! ```
//!
//! `seed-tree` uploads every regular file under DIR to the blob of the same relative name with the
//! `mtime` metadata `rclone` writes (nanoseconds, UTC), so that a later `rclone sync DIR` finds the
//! container in sync. It fills a large container in a fraction of the time `rclone copy` takes.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blob::{BlobStore, Metadata, TargetSpec, UploadOptions};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Args(HashMap<String, String>);

impl Args {
    fn parse(rest: &[String]) -> Res<Args> {
        let mut m = HashMap::new();
        let mut it = rest.iter();
        while let Some(k) = it.next() {
            let key = k
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {k:?}"))?;
            let v = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
            m.insert(key.to_string(), v.clone());
        }
        Ok(Args(m))
    }
    fn get(&self, k: &str) -> Res<String> {
        self.0
            .get(k)
            .cloned()
            .ok_or_else(|| format!("missing --{k}").into())
    }
    fn num(&self, k: &str, default: Option<u64>) -> Res<u64> {
        match (self.0.get(k), default) {
            (Some(v), _) => Ok(v.parse()?),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(format!("missing --{k}").into()),
        }
    }
}

const MIB: u64 = 1024 * 1024;

fn data_block(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn store(a: &Args) -> Res<BlobStore> {
    let mut spec = TargetSpec::new(format!("{}/{}", a.get("endpoint")?, a.get("container")?));
    spec.use_emulator = true;
    Ok(BlobStore::open(&spec)?)
}

fn raw(a: &Args) -> Res<Arc<dyn ObjectStore>> {
    let endpoint = a.get("endpoint")?;
    let account = endpoint
        .rsplit('/')
        .next()
        .unwrap_or("devstoreaccount1")
        .to_string();
    let s = MicrosoftAzureBuilder::new()
        .with_account(account)
        .with_access_key(blob::target::EMULATOR_KEY)
        .with_endpoint(endpoint)
        .with_container_name(a.get("container")?)
        .with_client_options(
            ClientOptions::new()
                .with_allow_http(true)
                .with_timeout(Duration::from_secs(600)),
        )
        .build()?;
    Ok(Arc::new(s))
}

/// Runs `op` on every item, `concurrency` at once, and returns items per second.
/// Every regular file under `root`.
fn tree_files(root: &std::path::Path) -> Res<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let t = e.file_type()?;
            if t.is_dir() {
                dirs.push(e.path());
            } else if t.is_file() {
                files.push(e.path());
            }
        }
    }
    Ok(files)
}

/// The metadata the copytool gives a file's blob, from its stat (a made-up FID and data version).
fn copytool_like_metadata(st: &std::fs::Metadata) -> Metadata {
    use std::os::unix::fs::MetadataExt;
    Metadata {
        owner: st.uid(),
        group: st.gid(),
        permissions: st.mode() & 0o7777,
        modtime: st.modified().unwrap_or(std::time::UNIX_EPOCH),
        kind: blob::FileKind::File,
        fid: Some(format!("[0x200000400:{:#x}:0x0]", st.ino())),
        mtime_ns: Some(i128::from(st.mtime()) * 1_000_000_000 + i128::from(st.mtime_nsec())),
        data_version: Some(1),
        ..Metadata::default()
    }
}

async fn per_second<T, F, Fut>(items: Vec<T>, concurrency: usize, op: F) -> Res<f64>
where
    F: FnMut(T) -> Fut,
    Fut: std::future::Future<Output = Res<()>>,
{
    let n = items.len();
    let t = Instant::now();
    futures::stream::iter(items)
        .map(op)
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

async fn run(cmd: &str, a: &Args) -> Res<()> {
    match cmd {
        "create-container" => {
            let endpoint = a.get("endpoint")?;
            let (base, account) = endpoint
                .rsplit_once('/')
                .ok_or("endpoint must be http://HOST:PORT/ACCOUNT")?;
            let hostport = base.trim_start_matches("http://");
            let name = a.get("name")?;
            let date = chrono::Utc::now()
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string();
            let path = format!("/{account}/{name}");
            let headers = [
                ("content-length", "0"),
                ("x-ms-date", date.as_str()),
                ("x-ms-version", "2021-08-06"),
            ];
            let auth = testkit::sign_shared_key(
                account,
                blob::target::EMULATOR_KEY,
                "PUT",
                &path,
                &[("restype", "container")],
                &headers,
            )?;
            let mut s = std::net::TcpStream::connect(hostport)?;
            let mut req = format!("PUT {path}?restype=container HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nAuthorization: {auth}\r\n");
            for (k, v) in headers {
                req.push_str(&format!("{k}: {v}\r\n"));
            }
            req.push_str("\r\n");
            s.write_all(req.as_bytes())?;
            let mut resp = String::new();
            std::io::Read::read_to_string(&mut s, &mut resp)?;
            let status = resp.split_whitespace().nth(1).unwrap_or("");
            if status != "201" && status != "409" {
                return Err(
                    format!("create container: {}", resp.lines().next().unwrap_or("")).into(),
                );
            }
        }
        "gen-large" => {
            let mut f = std::fs::File::create(a.get("file")?)?;
            let size = a.num("size", None)?;
            let mut off = 0;
            while off < size {
                let n = (8 * MIB).min(size - off);
                f.write_all(&data_block(n as usize, off + 1))?;
                off += n;
            }
            f.sync_all()?;
        }
        "gen-small" => {
            let dir = PathBuf::from(a.get("dir")?);
            std::fs::create_dir_all(&dir)?;
            let size = a.num("size", None)? as usize;
            for i in 0..a.num("count", None)? {
                std::fs::write(dir.join(format!("f{i:05}.dat")), data_block(size, i + 1))?;
            }
        }
        "ours-large" => {
            let s = store(a)?;
            let path = a.get("file")?;
            let file = std::fs::File::open(&path)?;
            let name = s.name_for(
                a.0.get("name")
                    .map_or("large.dat", String::as_str)
                    .as_bytes(),
            )?;
            let block = a.num("block-size", Some(8 * MIB))?;
            let opts = UploadOptions {
                block_size: block,
                single_put_threshold: block,
                blocks_in_flight: a.num("in-flight", Some(8))? as usize,
                ..Default::default()
            };
            let t = Instant::now();
            let up = s
                .upload_file(&file, &name, &Metadata::default(), opts)
                .await?;
            println!("{:.1}", up.size as f64 / 1e6 / t.elapsed().as_secs_f64());
        }
        "ours-small" => {
            let s = store(a)?;
            let dir = PathBuf::from(a.get("dir")?);
            let mut files = tree_files(&dir)?;
            files.sort();
            let concurrency = a.num("concurrency", Some(16))? as usize;
            // As the copytool writes a new file's blob: create-only, with the metadata it takes
            // from the file (no layout: that needs Lustre).
            let as_copytool = match a.0.get("as").map(String::as_str) {
                None | Some("plain") => false,
                Some("copytool") => true,
                Some(o) => return Err(format!("--as {o:?}: plain or copytool").into()),
            };
            let rate = per_second(files, concurrency, |p| {
                let s = s.clone();
                let dir = dir.clone();
                async move {
                    let rel = p.strip_prefix(&dir)?.to_string_lossy().into_owned();
                    let name = s.name_for(rel.as_bytes())?;
                    let file = std::fs::File::open(&p)?;
                    let (meta, opts) = if as_copytool {
                        (
                            copytool_like_metadata(&file.metadata()?),
                            UploadOptions {
                                mode: blob::WriteMode::CreateOnly,
                                ..UploadOptions::default()
                            },
                        )
                    } else {
                        (Metadata::default(), UploadOptions::default())
                    };
                    s.upload_file(&file, &name, &meta, opts).await?;
                    Res::Ok(())
                }
            })
            .await?;
            println!("{rate:.1}");
        }
        "raw-large" => {
            let s = raw(a)?;
            let size = a.num("size", None)?;
            let block = a.num("block-size", Some(8 * MIB))?;
            let in_flight = a.num("in-flight", Some(8))? as usize;
            let data = Bytes::from(data_block(block as usize, 7));
            let t = Instant::now();
            let name = a.0.get("name").map_or("large.dat", String::as_str);
            let upload = s.put_multipart(&Path::from(name)).await?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, block as usize);
            let mut off = 0;
            while off < size {
                w.wait_for_capacity(in_flight).await?;
                let n = block.min(size - off) as usize;
                w.put(data.slice(..n));
                off += n as u64;
            }
            w.finish().await?;
            println!("{:.1}", size as f64 / 1e6 / t.elapsed().as_secs_f64());
        }
        "raw-small" => {
            let s = raw(a)?;
            let count = a.num("count", None)?;
            let data = Bytes::from(data_block(a.num("size", None)? as usize, 3));
            let concurrency = a.num("concurrency", Some(16))? as usize;
            let rate = per_second((0..count).collect(), concurrency, |i| {
                let s = s.clone();
                let d = data.clone();
                async move {
                    s.put(&Path::from(format!("f{i:05}.dat")), PutPayload::from(d))
                        .await?;
                    Res::Ok(())
                }
            })
            .await?;
            println!("{rate:.1}");
        }
        "seed-tree" => {
            let s = raw(a)?;
            let root = PathBuf::from(a.get("dir")?);
            let files = tree_files(&root)?;
            let concurrency = a.num("concurrency", Some(32))? as usize;
            let rate = per_second(files, concurrency, |p| {
                let s = s.clone();
                let root = root.clone();
                async move {
                    let rel = p.strip_prefix(&root)?.to_string_lossy().into_owned();
                    let data = std::fs::read(&p)?;
                    let mtime: chrono::DateTime<chrono::Utc> =
                        std::fs::metadata(&p)?.modified()?.into();
                    let mut attrs = object_store::Attributes::new();
                    attrs.insert(
                        object_store::Attribute::Metadata("mtime".into()),
                        mtime.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string().into(),
                    );
                    let opts = object_store::PutOptions {
                        attributes: attrs,
                        ..Default::default()
                    };
                    s.put_opts(&Path::from(rel), PutPayload::from(data), opts)
                        .await?;
                    Res::Ok(())
                }
            })
            .await?;
            println!("{rate:.1}");
        }
        other => return Err(format!("unknown subcommand {other:?}").into()),
    }
    Ok(())
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = argv.first() else {
        eprintln!("usage: blob_bench SUBCOMMAND --key value ... (see the source header)");
        std::process::exit(2);
    };
    let result = Args::parse(&argv[1..]).and_then(|a| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(run(cmd, &a))
    });
    if let Err(e) = result {
        eprintln!("blob_bench {cmd}: {e}");
        std::process::exit(1);
    }
}
