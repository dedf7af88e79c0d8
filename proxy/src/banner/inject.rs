//! The streaming injector: upstream body chunks in, browser body chunks out.
//!
//! ```text
//! chunk ─▶ decoder (gzip | deflate | br | zstd | none) ─▶ lol_html until the banner is in
//!                                                          └▶ then bytes pass straight through
//! ```
//!
//! A gzip body may hold several members one after another, and every member is decoded;
//! bytes after the last gzip member (anything that does not start another one) and after
//! the end of a zlib or raw deflate stream are not part of the document and are dropped
//! rather than failing the page, as browsers do. A stream cut short is still an error.
//!
//! Nothing is buffered beyond what one chunk produces: lol_html holds at most an unfinished
//! tag (its memory is capped; past the cap it hands the bytes back untouched), and once the
//! banner is placed the rewriter is closed and the rest of the document is copied as is.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::HeaderMap;
use lol_html::html_content::ContentType;
use lol_html::html_content::Element;
use lol_html::send::{HtmlRewriter, SendHandlerTypes, Settings};
use lol_html::{end, AsciiCompatibleEncoding, ElementContentHandlers, MemorySettings, Selector};

/// Why a document cannot carry the banner (the caller passes it through untouched), or
/// why the stream broke.
#[derive(Debug, thiserror::Error)]
pub enum BannerError {
    /// A content coding the injector cannot decode (or several stacked).
    #[error("unsupported content encoding `{0}`")]
    UnsupportedEncoding(String),
    /// A charset in which an ASCII banner would not be text (UTF-16, ISO-2022-JP …).
    #[error("unsupported charset `{0}`")]
    UnsupportedCharset(String),
    /// The compressed body is corrupt.
    #[error("cannot decode the upstream body: {0}")]
    Decode(String),
    /// The HTML rewriter failed.
    #[error("cannot rewrite the document: {0}")]
    Rewrite(String),
}

/// The upstream's content coding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentEncoding {
    /// Not compressed.
    Identity,
    /// gzip.
    Gzip,
    /// deflate (zlib-wrapped, or raw as some servers send it).
    Deflate,
    /// Brotli.
    Brotli,
    /// Zstandard.
    Zstd,
}

impl ContentEncoding {
    /// Reads `Content-Encoding`.
    pub fn from_headers(h: &HeaderMap) -> Result<ContentEncoding, BannerError> {
        let values: Vec<String> = h
            .get_all(http::header::CONTENT_ENCODING)
            .iter()
            .flat_map(|v| {
                v.to_str()
                    .unwrap_or("?")
                    .split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .collect::<Vec<_>>()
            })
            .filter(|s| !s.is_empty() && s != "identity")
            .collect();
        match values.as_slice() {
            [] => Ok(ContentEncoding::Identity),
            [one] => match one.as_str() {
                "gzip" | "x-gzip" => Ok(ContentEncoding::Gzip),
                "deflate" => Ok(ContentEncoding::Deflate),
                "br" => Ok(ContentEncoding::Brotli),
                "zstd" => Ok(ContentEncoding::Zstd),
                other => Err(BannerError::UnsupportedEncoding(other.to_owned())),
            },
            many => Err(BannerError::UnsupportedEncoding(many.join(", "))),
        }
    }
}

/// The charset named by `Content-Type`, if any. Unknown labels fall back to the
/// default (the browser still reads the document's own `<meta>`); known charsets that are not
/// ASCII-compatible are refused.
pub fn charset(h: &HeaderMap) -> Result<Option<AsciiCompatibleEncoding>, BannerError> {
    let Some(ct) = h
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let Some(label) = ct.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"'))
    }) else {
        return Ok(None);
    };
    // Nearly every page says UTF-8: skip the search through every label encoding_rs knows.
    let enc = if label.eq_ignore_ascii_case("utf-8") {
        Some(encoding_rs::UTF_8)
    } else {
        encoding_rs::Encoding::for_label(label.as_bytes())
    };
    match enc {
        None => Ok(None),
        Some(enc) => AsciiCompatibleEncoding::new(enc)
            .map(Some)
            .ok_or_else(|| BannerError::UnsupportedCharset(label.to_owned())),
    }
}

struct Shared {
    injected: AtomicBool,
    frameset: AtomicBool,
    out: Mutex<Vec<u8>>,
}

impl Shared {
    /// The output buffer. Its lock only makes the injector `Sync`; a poisoned one holds
    /// bytes as good as any.
    fn out(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, bytes: &[u8]) {
        self.out().extend_from_slice(bytes);
    }

    /// Makes room for `additional` more bytes at once, so that a chunk's output is not
    /// copied again each time the buffer doubles.
    fn reserve(&self, additional: usize) {
        self.out().reserve(additional);
    }

    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.out())
    }
}

type Sink = Box<dyn FnMut(&[u8]) + Send>;

/// The HTML stage: lol_html until the banner is in, then a plain copy.
struct Stage {
    rewriter: Option<HtmlRewriter<'static, Sink>>,
    shared: Arc<Shared>,
    seen_any: bool,
    /// How much lol_html parses next: [`FIRST_SLICE`], doubling up to [`PARSE_SLICE`].
    slice: usize,
}

/// The most one upstream chunk may come out as. A compressed chunk that decodes to more is
/// a decompression bomb (a page compresses a few times over, not thousands), and what it
/// decodes to is held in memory until the chunk is sent on: it is refused instead.
pub const MAX_OUT_PER_CHUNK: usize = 16 << 20;

impl Stage {
    fn write_html(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        if self.shared.out().len() > MAX_OUT_PER_CHUNK {
            return Err(std::io::Error::other(format!(
                "one chunk of the body decodes to more than {} MiB",
                MAX_OUT_PER_CHUNK >> 20
            )));
        }
        if !self.seen_any {
            self.seen_any = true;
            // A UTF-16 document (byte order mark) cannot take an ASCII banner.
            if buf.starts_with(&[0xFE, 0xFF]) || buf.starts_with(&[0xFF, 0xFE]) {
                self.rewriter = None;
                self.shared.injected.store(false, Ordering::SeqCst);
            }
        }
        let mut rest = buf;
        while !rest.is_empty() {
            let Some(r) = self.rewriter.as_mut() else {
                self.shared.push(rest);
                break;
            };
            // lol_html reads the document a slice at a time, so that once the banner is in,
            // the rest of a large chunk is copied without being parsed.
            let (now, later) = rest.split_at(rest.len().min(self.slice));
            rest = later;
            self.slice = (self.slice * 2).min(PARSE_SLICE);
            if let Err(e) = r.write(now) {
                // Past its memory cap lol_html has flushed its input untouched: go on
                // copying. Any other failure would lose bytes, so it is an error.
                self.rewriter = None;
                if !matches!(e, lol_html::errors::RewritingError::MemoryLimitExceeded(_)) {
                    return Err(std::io::Error::other(e.to_string()));
                }
            } else if self.shared.injected.load(Ordering::SeqCst) {
                // The banner is in: flush the rewriter and copy the rest as is.
                if let Some(r) = self.rewriter.take() {
                    r.end().map_err(|e| std::io::Error::other(e.to_string()))?;
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        if let Some(r) = self.rewriter.take() {
            r.end().map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        Ok(())
    }
}

impl Write for Stage {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_html(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Pipeline {
    Identity(Stage),
    /// Deflate, until its first two bytes say zlib or raw.
    PendingDeflate(Stage, Vec<u8>),
    /// A gzip member.
    Gzip(flate2::write::GzDecoder<Stage>),
    /// Between gzip members, until the next two bytes say whether another one starts.
    GzipBetween(Stage, Vec<u8>),
    Zlib(flate2::write::ZlibDecoder<Stage>),
    RawDeflate(flate2::write::DeflateDecoder<Stage>),
    /// A compressed stream that has ended: whatever follows is dropped.
    Ended(Stage),
    Brotli(Box<brotli::DecompressorWriter<Stage>>),
    Zstd(zstd::stream::write::Decoder<'static, Stage>),
    Done,
}

fn decode_err(e: std::io::Error) -> BannerError {
    BannerError::Decode(e.to_string())
}

/// Writes `chunk` into a gzip, zlib or raw deflate decoder; once its stream (or gzip
/// member) has ended, the part of the chunk after it. At its end flate2's decoders take no
/// more input (`Ok(0)`, which `write_all` would turn into an error).
fn write_stream<'c>(
    decoder: &mut impl Write,
    mut chunk: &'c [u8],
) -> Result<Option<&'c [u8]>, BannerError> {
    while !chunk.is_empty() {
        match decoder.write(chunk) {
            Ok(0) => return Ok(Some(chunk)),
            Ok(n) => chunk = &chunk[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(decode_err(e)),
        }
    }
    Ok(None)
}

/// The two bytes every gzip member starts with (RFC 1952 §2.3.1).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

impl Pipeline {
    /// Whether what comes in now would go out unchanged: an uncompressed document whose
    /// rewriter is done.
    fn passes_through(&self) -> bool {
        matches!(self, Pipeline::Identity(stage) if stage.rewriter.is_none())
    }

    fn write(&mut self, chunk: &[u8]) -> Result<(), BannerError> {
        match self {
            Pipeline::Identity(s) => s
                .write_html(chunk)
                .map_err(|e| BannerError::Rewrite(e.to_string())),
            Pipeline::PendingDeflate(_, pending) => {
                pending.extend_from_slice(chunk);
                if pending.len() < 2 {
                    return Ok(());
                }
                let (b0, b1) = (pending[0], pending[1]);
                let zlib = b0 & 0x0F == 8 && (u16::from(b0) << 8 | u16::from(b1)) % 31 == 0;
                let Pipeline::PendingDeflate(stage, pending) =
                    std::mem::replace(self, Pipeline::Done)
                else {
                    return Ok(());
                };
                *self = if zlib {
                    Pipeline::Zlib(flate2::write::ZlibDecoder::new(stage))
                } else {
                    Pipeline::RawDeflate(flate2::write::DeflateDecoder::new(stage))
                };
                self.write(&pending)
            }
            Pipeline::Gzip(d) => {
                let Some(rest) = write_stream(d, chunk)? else {
                    return Ok(());
                };
                // The member has ended (its checksum is checked here); another may follow.
                let Pipeline::Gzip(d) = std::mem::replace(self, Pipeline::Done) else {
                    return Ok(());
                };
                *self = Pipeline::GzipBetween(d.finish().map_err(decode_err)?, Vec::new());
                self.write(rest)
            }
            Pipeline::GzipBetween(_, pending) => {
                pending.extend_from_slice(chunk);
                if pending.len() < GZIP_MAGIC.len() {
                    return Ok(());
                }
                let Pipeline::GzipBetween(stage, pending) = std::mem::replace(self, Pipeline::Done)
                else {
                    return Ok(());
                };
                if pending.starts_with(&GZIP_MAGIC) {
                    *self = Pipeline::Gzip(flate2::write::GzDecoder::new(stage));
                    self.write(&pending)
                } else {
                    *self = Pipeline::Ended(stage);
                    Ok(())
                }
            }
            Pipeline::Zlib(d) => {
                if write_stream(d, chunk)?.is_some() {
                    self.end_deflate()?;
                }
                Ok(())
            }
            Pipeline::RawDeflate(d) => {
                if write_stream(d, chunk)?.is_some() {
                    self.end_deflate()?;
                }
                Ok(())
            }
            Pipeline::Brotli(d) => d.write_all(chunk).map_err(decode_err),
            Pipeline::Zstd(d) => d.write_all(chunk).map_err(decode_err),
            Pipeline::Ended(_) | Pipeline::Done => Ok(()),
        }
    }

    /// Once a zlib or raw deflate stream has ended: finishes its decoder (which checks that
    /// the stream is whole) and keeps only the HTML stage.
    fn end_deflate(&mut self) -> Result<(), BannerError> {
        let stage = match std::mem::replace(self, Pipeline::Done) {
            Pipeline::Zlib(d) => d.finish().map_err(decode_err)?,
            Pipeline::RawDeflate(d) => d.finish().map_err(decode_err)?,
            other => {
                *self = other;
                return Ok(());
            }
        };
        *self = Pipeline::Ended(stage);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BannerError> {
        let mut stage = match std::mem::replace(self, Pipeline::Done) {
            Pipeline::Identity(s) => s,
            Pipeline::PendingDeflate(stage, pending) => {
                *self = Pipeline::RawDeflate(flate2::write::DeflateDecoder::new(stage));
                self.write(&pending)?;
                return self.finish();
            }
            Pipeline::Gzip(d) => d.finish().map_err(decode_err)?,
            // A byte after the last member is not the start of another.
            Pipeline::GzipBetween(s, _) => s,
            Pipeline::Zlib(d) => d.finish().map_err(decode_err)?,
            Pipeline::RawDeflate(d) => d.finish().map_err(decode_err)?,
            Pipeline::Ended(s) => s,
            Pipeline::Brotli(mut d) => {
                d.flush().map_err(decode_err)?;
                d.into_inner()
                    .map_err(|_| BannerError::Decode("truncated brotli stream".into()))?
            }
            Pipeline::Zstd(mut d) => {
                d.flush().map_err(decode_err)?;
                d.into_inner()
            }
            Pipeline::Done => return Ok(()),
        };
        stage
            .finish()
            .map_err(|e| BannerError::Rewrite(e.to_string()))
    }
}

/// Streams one document, placing the banner once.
pub struct Injector {
    // lol_html's rewriter is Send but not Sync; Pingora's request context must be both.
    // The lock is never contended: one request owns its injector.
    pipeline: Mutex<Pipeline>,
    shared: Arc<Shared>,
    banner_len: u64,
    /// Bytes handed back so far.
    sent: u64,
    /// The length announced for the document, once [`Injector::fixed_length`] chose one.
    announced: Option<u64>,
}

/// How much of the document lol_html parses at a time (see [`Stage::write_html`]): small,
/// because everything parsed after `<body>` is wasted work.
const PARSE_SLICE: usize = 512;

/// The first slice: a short `<head>` (a body tag within the first 128 bytes) costs a
/// quarter of a full slice; longer ones grow to [`PARSE_SLICE`] in two more steps.
const FIRST_SLICE: usize = 128;

/// The selectors the injector watches for, parsed once rather than for every document.
static BODY: std::sync::LazyLock<Selector> =
    std::sync::LazyLock::new(|| "body".parse().expect("`body` is a valid selector"));
static FRAMESET: std::sync::LazyLock<Selector> =
    std::sync::LazyLock::new(|| "frameset".parse().expect("`frameset` is a valid selector"));

/// Gives the compiler the element handler's type (what lol_html's `element!` macro does).
fn on_element<F>(f: F) -> F
where
    F: FnMut(&mut Element<'_, '_, SendHandlerTypes>) -> lol_html::HandlerResult + Send + 'static,
{
    f
}

/// lol_html keeps at most this much of an unfinished token; past it the rest passes through.
const REWRITER_MEMORY: usize = 1 << 20;

impl Injector {
    /// An injector for a document with the given coding and charset. `xhtml` documents get
    /// the banner only inside `<body>`: appending after the root element would break XML.
    pub fn new(
        banner: impl Into<Arc<str>>,
        encoding: ContentEncoding,
        charset: Option<AsciiCompatibleEncoding>,
        xhtml: bool,
    ) -> Result<Injector, BannerError> {
        let shared = Arc::new(Shared {
            injected: AtomicBool::new(false),
            frameset: AtomicBool::new(false),
            out: Mutex::new(Vec::new()),
        });
        let banner: Arc<str> = banner.into();
        let banner_len = banner.len() as u64;
        let (at_body, at_end) = (banner.clone(), banner);
        let (s_body, s_frame, s_end) = (shared.clone(), shared.clone(), shared.clone());
        // No `with_adjust_charset_on_meta_tag`: the charset changes only how lol_html
        // decodes text for handlers (these read none) and encodes inserted content (the
        // banner is ASCII, the same bytes in every charset accepted here), never how it
        // finds tags, so a `<meta charset>` cannot change a byte of the output, and the
        // `meta` selector it adds cost a third of building the rewriter.
        let mut settings = Settings::new_send()
            .with_strict(false)
            .with_memory_settings(
                MemorySettings::new()
                    .with_max_allowed_memory_usage(REWRITER_MEMORY)
                    .with_graceful_bail_out_on_memory_limit_exceeded(true),
            )
            .append_element_content_handler((
                std::borrow::Cow::Borrowed(&*BODY),
                ElementContentHandlers::default().element(on_element(move |el| {
                    if !s_body.injected.swap(true, Ordering::SeqCst) {
                        el.prepend(&at_body, ContentType::Html);
                    }
                    Ok(())
                })),
            ))
            .append_element_content_handler((
                std::borrow::Cow::Borrowed(&*FRAMESET),
                ElementContentHandlers::default().element(on_element(move |_el| {
                    s_frame.frameset.store(true, Ordering::SeqCst);
                    Ok(())
                })),
            ))
            .append_document_content_handler(end!(move |end| {
                let nothing_yet = !s_end.injected.load(Ordering::SeqCst);
                if nothing_yet && !xhtml && !s_end.frameset.load(Ordering::SeqCst) {
                    // No <body> tag: the browser puts trailing content into the body.
                    s_end.injected.store(true, Ordering::SeqCst);
                    end.append(&at_end, ContentType::Html);
                }
                Ok(())
            }));
        if let Some(cs) = charset {
            settings = settings.with_encoding(cs);
        }
        let sink_shared = shared.clone();
        let sink: Sink = Box::new(move |chunk: &[u8]| sink_shared.push(chunk));
        let stage = Stage {
            rewriter: Some(HtmlRewriter::new(settings, sink)),
            shared: shared.clone(),
            seen_any: false,
            slice: FIRST_SLICE,
        };
        let pipeline = match encoding {
            ContentEncoding::Identity => Pipeline::Identity(stage),
            ContentEncoding::Gzip => Pipeline::Gzip(flate2::write::GzDecoder::new(stage)),
            ContentEncoding::Deflate => Pipeline::PendingDeflate(stage, Vec::new()),
            ContentEncoding::Brotli => {
                Pipeline::Brotli(Box::new(brotli::DecompressorWriter::new(stage, 16 * 1024)))
            }
            ContentEncoding::Zstd => {
                Pipeline::Zstd(zstd::stream::write::Decoder::new(stage).map_err(decode_err)?)
            }
        };
        Ok(Injector {
            pipeline: Mutex::new(pipeline),
            shared,
            banner_len,
            sent: 0,
            announced: None,
        })
    }

    /// For an uncompressed document of `upstream_len` bytes: the exact length of what this
    /// injector will hand back, so that the response can keep a `Content-Length` instead of
    /// being re-framed as chunks (which costs the browser connection an extra write for
    /// the last chunk). lol_html copies every byte it does not rewrite, and the banner is
    /// ASCII (the same bytes in every charset the injector accepts), so the document grows
    /// by exactly the banner; a document that gets no banner (a frameset, XHTML without
    /// `<body>`) is padded at its end with as many spaces, which HTML and XML both ignore
    /// there. `None` for a compressed document (its decoded length is unknown) or once
    /// bytes have gone through.
    pub fn fixed_length(&mut self, upstream_len: u64) -> Option<u64> {
        let identity = matches!(self.pipeline(), Pipeline::Identity(_));
        if !identity || self.sent > 0 || self.announced.is_some() {
            return None;
        }
        let total = upstream_len.checked_add(self.banner_len)?;
        self.announced = Some(total);
        Some(total)
    }

    /// Counts what goes out, and refuses to go past an announced length (the browser
    /// would be handed a cut document).
    fn count(&mut self, out: Bytes) -> Result<Bytes, BannerError> {
        self.sent += out.len() as u64;
        match self.announced {
            Some(total) if self.sent > total => Err(BannerError::Rewrite(format!(
                "the document grew past the {total} bytes announced"
            ))),
            _ => Ok(out),
        }
    }

    /// The pipeline (its lock only makes the injector `Sync`, so a poisoned one is as good).
    fn pipeline(&mut self) -> &mut Pipeline {
        self.pipeline
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn run(
        &mut self,
        f: impl FnOnce(&mut Pipeline) -> Result<(), BannerError>,
    ) -> Result<Bytes, BannerError> {
        let result = f(self.pipeline());
        let out = Bytes::from(self.shared.take());
        result.map(|()| out)
    }

    /// Feeds one upstream chunk; returns what can be sent on now.
    pub fn write(&mut self, chunk: &[u8]) -> Result<Bytes, BannerError> {
        // What comes out of an uncompressed chunk: the chunk, and the banner if it may
        // still go in.
        let banner_len = if self.injected() {
            0
        } else {
            usize::try_from(self.banner_len).unwrap_or(0)
        };
        self.shared.reserve(chunk.len().saturating_add(banner_len));
        let out = self.run(|p| p.write(chunk))?;
        self.count(out)
    }

    /// [`Injector::write`] for a chunk the caller owns: once the banner is in (or the
    /// document was found unable to take one) an uncompressed chunk is handed back as it
    /// is, without being copied.
    pub fn write_shared(&mut self, chunk: &Bytes) -> Result<Bytes, BannerError> {
        if self.pipeline().passes_through() {
            return self.count(chunk.clone());
        }
        self.write(chunk)
    }

    /// Ends the stream; returns the last bytes to send (with the padding that makes up an
    /// announced length).
    pub fn finish(&mut self) -> Result<Bytes, BannerError> {
        let tail = self.run(Pipeline::finish)?;
        let tail = self.count(tail)?;
        match self.announced {
            Some(total) if self.sent < total => {
                let pad = usize::try_from(total - self.sent).map_err(|_| {
                    BannerError::Rewrite("the document ended far short of its length".into())
                })?;
                self.sent = total;
                let mut out = Vec::with_capacity(tail.len() + pad);
                out.extend_from_slice(&tail);
                out.resize(tail.len() + pad, b' ');
                Ok(Bytes::from(out))
            }
            _ => Ok(tail),
        }
    }

    /// Whether the banner went in.
    pub fn injected(&self) -> bool {
        self.shared.injected.load(Ordering::SeqCst)
    }
}
