//! Globs on MCP tool and method names: `*` matches any run of characters (`/` and `.`
//! included), every other character matches itself. Nothing else is special, so a tool name
//! with dots or brackets needs no escaping.

/// A compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    /// The literal pieces between `*`s.
    parts: Vec<String>,
    anchored_start: bool,
    anchored_end: bool,
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        let parts: Vec<String> = pattern.split('*').map(str::to_owned).collect();
        Self {
            source: pattern.to_owned(),
            anchored_start: !pattern.starts_with('*'),
            anchored_end: !pattern.ends_with('*'),
            parts,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when this glob has no `*`.
    pub fn is_literal(&self) -> bool {
        self.parts.len() == 1
    }

    pub fn matches(&self, name: &str) -> bool {
        if self.is_literal() {
            return self.source == name;
        }
        let first = &self.parts[0];
        let last = &self.parts[self.parts.len() - 1];
        if name.len() < first.len() + last.len() || !name.starts_with(first.as_str()) {
            return false;
        }
        if !name.ends_with(last.as_str()) {
            return false;
        }
        // Middle parts, greedily leftmost, between the fixed prefix and suffix.
        let mut rest = &name[first.len()..name.len() - last.len()];
        for part in &self.parts[1..self.parts.len() - 1] {
            match rest.find(part.as_str()) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        true
    }

    /// True when every name this glob matches is also matched by `other`
    /// (decided exactly for literals, conservatively for patterns).
    pub fn is_covered_by(&self, other: &Glob) -> bool {
        if self.is_literal() {
            return other.matches(&self.source);
        }
        // A pattern is covered when `other` is a lone `*`, or both are `prefix*` forms and
        // ours extends theirs. Other shapes are not reported (no false warnings).
        if other.source == "*" {
            return true;
        }
        other.parts.len() == 2
            && other.parts[1].is_empty()
            && self.source.starts_with(other.parts[0].as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn literal_matches_only_itself() {
        let g = Glob::new("search_deals");
        assert!(g.matches("search_deals"));
        assert!(!g.matches("search_deals2"));
        assert!(!g.matches("search_deal"));
    }

    #[test]
    fn star_matches_any_run_including_dots_and_slashes() {
        assert!(Glob::new("search_*").matches("search_"));
        assert!(Glob::new("search_*").matches("search_crm.deals"));
        assert!(Glob::new("notifications/*").matches("notifications/initialized"));
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("a*b*c").matches("abc"));
        assert!(Glob::new("a*b*c").matches("a_x_b_y_c"));
        assert!(!Glob::new("a*b*c").matches("acb"));
        assert!(!Glob::new("ab*ba").matches("aba"));
        assert!(!Glob::new("get_*").matches("list_x"));
    }

    #[test]
    fn coverage_is_exact_for_literals_and_prefixes() {
        assert!(Glob::new("get_x").is_covered_by(&Glob::new("get_*")));
        assert!(Glob::new("get_x*").is_covered_by(&Glob::new("get_*")));
        assert!(Glob::new("get_*").is_covered_by(&Glob::new("*")));
        assert!(!Glob::new("get_*").is_covered_by(&Glob::new("get_x*")));
        assert!(!Glob::new("list_x").is_covered_by(&Glob::new("get_*")));
    }
}
