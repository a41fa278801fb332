//! The export file: JSON lines, one [`DumpRecord`] a line, between a header and an end line.
//!
//! ```text
//! {"kind":"header","format":1,"parlor":"0.1.0","tenants":["default"],"all_tenants":true,"exported_ms":...}
//! {"kind":"counter","name":"next_user_id","value":2}
//! {"kind":"user","id":1,"tenant":"default","username":"alice","password_hash":"$argon2id$...",...}
//! ...
//! {"kind":"end","records":42}
//! ```
//!
//! [`Export`] writes one from a single read transaction (the CLI's read-only open, or the
//! running server's `POST /admin/export`); [`import`] reads one into an empty database through
//! the Writer, in batches, after checking every line.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use parlor_storage::{DumpRecord, Snapshot, Store, WriterConfig};
use serde::{Deserialize, Serialize};

/// Version of the file format; [`import`] refuses another.
pub const FORMAT: u32 = 1;

/// Rows written per Writer transaction on import.
const BATCH: usize = 1000;

/// The first line of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Always `header`.
    pub kind: String,
    pub format: u32,
    /// The version of Parlor that wrote it.
    pub parlor: String,
    /// The tenants the file holds.
    pub tenants: Vec<String>,
    /// Whether it is a copy of every tenant (`false`: the one tenant asked for).
    pub all_tenants: bool,
    pub exported_ms: u64,
}

/// The last line of an export: a file without it was cut short.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct End {
    kind: String,
    records: u64,
}

/// Why an export or an import failed.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("storage: {0}")]
    Storage(#[from] parlor_storage::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("no tenant named {0}")]
    NoTenant(String),
    #[error("line {line}: {reason}")]
    Line { line: u64, reason: String },
    #[error("{0}")]
    Refused(String),
}

/// An export ready to be written: its snapshot and header.
pub struct Export {
    snapshot: Snapshot,
    tenant: Option<String>,
    header: Header,
}

impl Export {
    /// Prepares an export of `tenant` (every tenant when `None`) from `snapshot`; an unknown
    /// tenant is refused here, before anything is written.
    pub fn new(snapshot: Snapshot, tenant: Option<String>) -> Result<Export, DumpError> {
        let known = snapshot.tenants()?;
        let tenants = match &tenant {
            Some(t) if !known.contains(t) => return Err(DumpError::NoTenant(t.clone())),
            Some(t) => vec![t.clone()],
            None => known,
        };
        let header = Header {
            kind: "header".into(),
            format: FORMAT,
            parlor: env!("CARGO_PKG_VERSION").into(),
            tenants,
            all_tenants: tenant.is_none(),
            exported_ms: parlor_actors::now_ms(),
        };
        Ok(Export {
            snapshot,
            tenant,
            header,
        })
    }

    /// The header the file will start with.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Writes the whole file to `out`; returns the number of records (header and end line
    /// not counted).
    pub fn write_to(&self, out: &mut impl Write) -> Result<u64, DumpError> {
        line(out, &self.header)?;
        let mut records = 0u64;
        let mut failed: Option<std::io::Error> = None;
        let scanned = self.snapshot.dump(self.tenant.as_deref(), |record| {
            line(out, &record).map_err(|e| {
                failed = Some(e);
                parlor_storage::Error::Unavailable("the export's output failed")
            })?;
            records += 1;
            Ok(())
        });
        if let Some(e) = failed {
            return Err(e.into());
        }
        scanned?;
        line(
            out,
            &End {
                kind: "end".into(),
                records,
            },
        )?;
        out.flush()?;
        Ok(records)
    }
}

fn line(out: &mut impl Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

/// What an import wrote.
#[derive(Debug, Clone)]
pub struct Imported {
    pub header: Header,
    pub records: u64,
}

/// Reads the export `input` into the database at `db_path`, which must be empty (or not
/// exist yet). Every line is checked before anything is written; a database the import
/// created is removed again when the import fails.
pub fn import(input: &Path, db_path: &Path) -> Result<Imported, DumpError> {
    let header = check_file(input)?;
    let existed = db_path.exists();
    let store = Store::open(db_path, WriterConfig::default()).map_err(|e| {
        if e.is_in_use() {
            DumpError::Refused(format!(
                "{} is open in another process (a running server?): stop it first",
                db_path.display()
            ))
        } else {
            e.into()
        }
    })?;
    let outcome = (|| {
        if !store.snapshot()?.is_empty()? {
            return Err(DumpError::Refused(format!(
                "refusing to import into {}: the database is not empty (import needs an empty data directory)",
                db_path.display()
            )));
        }
        let records = write_all(&store, input)?;
        Ok(Imported { header, records })
    })();
    store.shutdown();
    drop(store);
    if outcome.is_err() && !existed {
        let _ = std::fs::remove_file(db_path);
    }
    outcome
}

/// Reads the records of `input` (after the header) one by one.
fn records(input: &Path) -> Result<impl Iterator<Item = Result<(u64, Line), DumpError>>, DumpError> {
    let reader = BufReader::new(File::open(input)?);
    Ok(reader.lines().enumerate().map(|(i, text)| {
        let n = i as u64 + 1;
        let text = text?;
        parse_line(n, &text).map(|l| (n, l))
    }))
}

/// One parsed line.
enum Line {
    Header(Header),
    Record(Box<DumpRecord>),
    End(u64),
}

fn parse_line(n: u64, text: &str) -> Result<Line, DumpError> {
    let bad = |reason: String| DumpError::Line { line: n, reason };
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    match value.get("kind").and_then(|k| k.as_str()) {
        None => Err(bad("no \"kind\"".into())),
        Some("header") => serde_json::from_value(value)
            .map(Line::Header)
            .map_err(|e| bad(format!("bad header: {e}"))),
        Some("end") => serde_json::from_value::<End>(value)
            .map(|e| Line::End(e.records))
            .map_err(|e| bad(format!("bad end line: {e}"))),
        Some(kind) => {
            let kind = kind.to_owned();
            serde_json::from_value(value)
                .map(|r| Line::Record(Box::new(r)))
                .map_err(|e| bad(format!("bad {kind} record: {e}")))
        }
    }
}

/// Checks every line of `input`: a header of a known format first, records, then the end
/// line with the right count.
fn check_file(input: &Path) -> Result<Header, DumpError> {
    let mut header = None;
    let mut count = 0u64;
    let mut ended = false;
    for item in records(input)? {
        let (n, line) = item?;
        let bad = |reason: &str| DumpError::Line {
            line: n,
            reason: reason.into(),
        };
        if ended {
            return Err(bad("a line after the end line"));
        }
        match line {
            Line::Header(h) if n == 1 => {
                if h.format != FORMAT {
                    return Err(bad(&format!(
                        "format {} is not supported (this Parlor reads format {FORMAT})",
                        h.format
                    )));
                }
                header = Some(h);
            }
            _ if n == 1 => return Err(bad("the first line must be the header")),
            Line::Header(_) => return Err(bad("a second header")),
            Line::Record(_) => count += 1,
            Line::End(records) if records == count => ended = true,
            Line::End(records) => {
                return Err(bad(&format!(
                    "the end line counts {records} records, the file has {count}"
                )))
            }
        }
    }
    let header = header.ok_or_else(|| DumpError::Refused("the file is empty".into()))?;
    if !ended {
        return Err(DumpError::Refused(
            "the file has no end line: it was cut short".into(),
        ));
    }
    Ok(header)
}

fn write_all(store: &Store, input: &Path) -> Result<u64, DumpError> {
    let mut batch: Vec<(u64, DumpRecord)> = Vec::with_capacity(BATCH);
    let mut written = 0u64;
    let flush = |batch: Vec<(u64, DumpRecord)>| -> Result<(), DumpError> {
        store.writer().write_blocking(move |tx| {
            for (n, record) in &batch {
                tx.load(record)
                    .map_err(|e| parlor_storage::Error::Conflict(format!("line {n}: {e}")))?;
            }
            Ok(())
        })?;
        Ok(())
    };
    for item in records(input)? {
        if let (n, Line::Record(record)) = item? {
            batch.push((n, *record));
            written += 1;
            if batch.len() >= BATCH {
                flush(std::mem::take(&mut batch))?;
            }
        }
    }
    if !batch.is_empty() {
        flush(batch)?;
    }
    Ok(written)
}
