//! The undefined-symbol allow-list (§5.4.2): every symbol the module imports
//! must exist in unix/genunix, because the Makefile links with plain `ld -r`
//! and krtld refuses a module with an unresolved symbol at `modload` time,
//! which we cannot test on Linux. Anything unexpected (`__udivti3` from an
//! unlinked compiler_builtins, `_Unwind_Resume`, `rust_eh_personality`) must
//! fail the build here instead.

use std::collections::BTreeSet;
use std::path::Path;

use crate::Error;

/// A set of allowed undefined symbols.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    symbols: BTreeSet<String>,
}

impl Allowlist {
    /// Parses the allow-list format: one symbol per line; `#` starts a
    /// comment; blank lines are ignored; only the first whitespace-separated
    /// column counts, so docs/illumos-kvm-imports.txt (symbol TAB defined-in
    /// TAB referenced-by) can be used as it is.
    pub fn parse(text: &str) -> Self {
        let symbols = text
            .lines()
            .filter_map(|line| {
                let line = line.split('#').next().unwrap_or("");
                line.split_whitespace().next().map(str::to_string)
            })
            .collect();
        Allowlist { symbols }
    }

    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::new(format!("allow-list {}: {e}", path.display())))?;
        Ok(Self::parse(&text))
    }

    pub fn contains(&self, symbol: &str) -> bool {
        self.symbols.contains(symbol)
    }

    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.symbols.iter().map(String::as_str)
    }
}

impl<S: Into<String>> FromIterator<S> for Allowlist {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Allowlist {
            symbols: iter.into_iter().map(Into::into).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comments_blank_lines_and_extra_columns() {
        let a = Allowlist::parse(
            "# header\n\nkmem_alloc\tuts/common/os/kmem.c\tkvm.c\n  memcpy  # trailing\n## group\npanic\n",
        );
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            ["kmem_alloc", "memcpy", "panic"]
        );
        assert!(!a.contains("uts/common/os/kmem.c"));
        assert!(!a.contains("#"));
    }
}
