//! A NUL-terminated message formatted into a fixed buffer, without
//! allocating: what the panic handler hands to illumos `panic("%s", msg)`
//! and the log hands to `cmn_err`.
//!
//! The panic handler cannot allocate (the allocator may be what failed, and
//! a panic can happen with locks held). The message is an argument, never
//! the format string, so a `%` in it is harmless. Text that does not fit is
//! cut and marked with "...".

use core::fmt;

/// A NUL-terminated message of at most `N - 1` bytes.
pub struct CStrBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
    truncated: bool,
}

const ELLIPSIS: &[u8] = b"...";

impl<const N: usize> CStrBuf<N> {
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
            truncated: false,
        }
    }

    /// Forget the previous message.
    pub fn clear(&mut self) {
        self.len = 0;
        self.truncated = false;
    }

    /// The message bytes followed by one NUL, ready for a `char *`.
    /// Interior NULs were replaced when written, so C sees the whole text.
    pub fn as_c_bytes(&mut self) -> &[u8] {
        let cap = N.saturating_sub(1);
        let end = if self.truncated && cap >= ELLIPSIS.len() {
            let start = cap - ELLIPSIS.len();
            let start = start.min(self.len);
            if let Some(tail) = self.buf.get_mut(start..start + ELLIPSIS.len()) {
                tail.copy_from_slice(ELLIPSIS);
            }
            start + ELLIPSIS.len()
        } else {
            self.len
        };
        if let Some(nul) = self.buf.get_mut(end) {
            *nul = 0;
        }
        self.buf.get(..=end).unwrap_or(&[])
    }
}

impl<const N: usize> Default for CStrBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for CStrBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let cap = N.saturating_sub(1);
        for &b in s.as_bytes() {
            match self.buf.get_mut(self.len) {
                Some(slot) if self.len < cap => {
                    *slot = if b == 0 { b'?' } else { b };
                    self.len += 1;
                }
                _ => {
                    self.truncated = true;
                    break;
                }
            }
        }
        // Never report an error: a cut message is better than none.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    fn text(m: &mut CStrBuf<32>) -> std::string::String {
        let b = m.as_c_bytes();
        assert_eq!(b.last(), Some(&0), "NUL-terminated");
        assert!(!b[..b.len() - 1].contains(&0), "no interior NUL");
        std::string::String::from_utf8(b[..b.len() - 1].to_vec()).unwrap()
    }

    #[test]
    fn short_message_is_kept_whole() {
        let mut m = CStrBuf::<32>::new();
        write!(m, "index {} out of range", 7).unwrap();
        assert_eq!(text(&mut m), "index 7 out of range");
    }

    #[test]
    fn long_message_is_cut_to_the_buffer_and_marked() {
        let mut m = CStrBuf::<32>::new();
        write!(m, "{}", "x".repeat(100)).unwrap();
        let t = text(&mut m);
        assert_eq!(t.len(), 31);
        assert!(t.ends_with("..."));
        assert!(t.starts_with("xxxxxxxx"));
    }

    #[test]
    fn exactly_full_message_is_not_marked() {
        let mut m = CStrBuf::<32>::new();
        write!(m, "{}", "y".repeat(31)).unwrap();
        assert_eq!(text(&mut m), "y".repeat(31));
    }

    #[test]
    fn percent_and_nul_survive_as_plain_text() {
        let mut m = CStrBuf::<32>::new();
        write!(m, "100% %s\0end").unwrap();
        assert_eq!(text(&mut m), "100% %s?end");
    }

    #[test]
    fn clear_starts_a_new_message() {
        let mut m = CStrBuf::<32>::new();
        write!(m, "{}", "z".repeat(50)).unwrap();
        m.clear();
        write!(m, "second").unwrap();
        assert_eq!(text(&mut m), "second");
    }
}
