//! Reading codex's stream as bytes, a line at a time, with a cap on a line's
//! length so a runaway producer cannot exhaust memory. Optionally copies
//! every byte read, unchanged, to a record file.

use std::io::{self, BufRead, Write};

/// Lines longer than this are skipped (reported, not kept), so memory stays
/// bounded whatever codex prints. Codex prints a command's whole output in
/// one line; 16 MiB leaves room for outputs of several MB.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum LineRead {
    /// `buf` holds one line, without its `\n`.
    Line,
    /// A line of this many bytes was over the cap and skipped.
    Oversized(usize),
    End,
}

pub struct LineReader<R> {
    reader: R,
    record: Option<Box<dyn Write + Send>>,
    max_line: usize,
    /// Bytes of the line being read so far; kept across an interrupted
    /// read so the caller can look at its signals and call again.
    length: Option<usize>,
    /// Asked between chunks of one line: a line that never ends (input
    /// like `/dev/zero`) must not keep a caller from its signals.
    stop_wanted: Option<fn() -> bool>,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(reader: R, record: Option<Box<dyn Write + Send>>) -> LineReader<R> {
        LineReader {
            reader,
            record,
            max_line: MAX_LINE_BYTES,
            length: None,
            stop_wanted: None,
        }
    }

    /// Between chunks of a line, `stop_wanted` is asked; when it says yes
    /// the read returns `Interrupted` (and goes on with the line if called again).
    pub fn with_stop(mut self, stop_wanted: fn() -> bool) -> LineReader<R> {
        self.stop_wanted = Some(stop_wanted);
        self
    }

    pub fn with_max_line(mut self, max_line: usize) -> LineReader<R> {
        self.max_line = max_line;
        self
    }

    /// Reads the next line into `buf` (cleared first). A last line without
    /// `\n` still counts as a line. An interrupted read (a signal) returns
    /// `ErrorKind::Interrupted`; calling again with the same `buf` goes on
    /// with the same line.
    pub fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<LineRead> {
        let mut length = match self.length.take() {
            Some(length) => length,
            None => {
                buf.clear();
                0
            }
        };
        loop {
            let available = match self.reader.fill_buf() {
                Ok(available) => available,
                Err(error) => {
                    if error.kind() == io::ErrorKind::Interrupted {
                        self.length = Some(length);
                    }
                    return Err(error);
                }
            };
            if available.is_empty() {
                return Ok(match length {
                    0 => LineRead::End,
                    n if n > self.max_line => LineRead::Oversized(n),
                    _ => LineRead::Line,
                });
            }
            let (chunk, found_newline) = match memchr_newline(available) {
                Some(index) => (&available[..=index], true),
                None => (available, false),
            };
            if let Some(record) = self.record.as_mut() {
                // The record must stay exact: a failed write is reported, not skipped.
                record.write_all(chunk)?;
            }
            let body = if found_newline {
                &chunk[..chunk.len() - 1]
            } else {
                chunk
            };
            if length + body.len() <= self.max_line {
                buf.extend_from_slice(body);
            } else if length <= self.max_line {
                // Just crossed the cap: drop what was kept, count the rest.
                buf.clear();
                buf.shrink_to(self.max_line.min(1 << 20));
            }
            length += body.len();
            let consumed = chunk.len();
            self.reader.consume(consumed);
            if found_newline {
                return Ok(if length > self.max_line {
                    LineRead::Oversized(length)
                } else {
                    LineRead::Line
                });
            }
            if self.stop_wanted.is_some_and(|stop_wanted| stop_wanted()) {
                self.length = Some(length);
                return Err(io::ErrorKind::Interrupted.into());
            }
        }
    }

    pub fn flush_record(&mut self) -> io::Result<()> {
        match self.record.as_mut() {
            Some(record) => record.flush(),
            None => Ok(()),
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_split_capped_and_recorded_exactly() {
        let input = b"one\r\n\xff\xfe bad utf8\n0123456789abcdef\nlast-without-newline".to_vec();
        let record = Shared::default();
        let reader = io::BufReader::with_capacity(4, &input[..]);
        let mut lines = LineReader::new(reader, Some(Box::new(record.clone()))).with_max_line(10);
        let mut buf = Vec::new();
        assert_eq!(lines.next_line(&mut buf).unwrap(), LineRead::Line);
        assert_eq!(buf, b"one\r");
        assert_eq!(lines.next_line(&mut buf).unwrap(), LineRead::Oversized(11));
        assert_eq!(lines.next_line(&mut buf).unwrap(), LineRead::Oversized(16));
        assert_eq!(lines.next_line(&mut buf).unwrap(), LineRead::Oversized(20));
        assert_eq!(lines.next_line(&mut buf).unwrap(), LineRead::End);
        assert_eq!(*record.0.lock().unwrap(), input);
    }

    /// Yields its chunks one read at a time, with an EINTR between them.
    struct Interrupting {
        chunks: Vec<&'static [u8]>,
        interrupt_next: bool,
    }
    impl Read for Interrupting {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if std::mem::take(&mut self.interrupt_next) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            self.interrupt_next = true;
            if self.chunks.is_empty() {
                return Ok(0);
            }
            let chunk = self.chunks.remove(0);
            out[..chunk.len()].copy_from_slice(chunk);
            Ok(chunk.len())
        }
    }

    #[test]
    fn an_interrupted_read_keeps_the_line_so_far() {
        let source = Interrupting {
            chunks: vec![b"hal", b"f a line\nnext\n"],
            interrupt_next: false,
        };
        let mut lines = LineReader::new(io::BufReader::new(source), None);
        let mut buf = Vec::new();
        let mut results = Vec::new();
        loop {
            match lines.next_line(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(LineRead::Line) => results.push(String::from_utf8(buf.clone()).unwrap()),
                Ok(LineRead::End) => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(results, ["half a line", "next"]);
    }

    #[test]
    fn a_short_last_line_without_newline_is_a_line() {
        let mut lines = LineReader::new(&b"a\nbc"[..], None);
        let mut buf = Vec::new();
        assert_eq!(lines.next_line(&mut buf).unwrap(), LineRead::Line);
        assert_eq!(lines.next_line(&mut buf).unwrap(), LineRead::Line);
        assert_eq!(buf, b"bc");
        assert_eq!(lines.next_line(&mut buf).unwrap(), LineRead::End);
    }
}
