//! Topic names and topic filters (spec 4.7): validation, `$share/{group}/{filter}`
//! parsing, and a reference matcher that the router's trie is tested against.

/// Why a topic name or filter is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic is empty")]
    Empty,
    #[error("topic is longer than 65535 bytes")]
    TooLong,
    #[error("topic contains U+0000")]
    Nul,
    #[error("topic name contains a wildcard")]
    WildcardInName,
    #[error("'#' must be the last level and alone in it")]
    MisplacedMultiLevel,
    #[error("'+' must be alone in its level")]
    MisplacedSingleLevel,
    #[error(
        "shared subscription needs a non-empty share name without '+', '#' or '/' and a filter"
    )]
    InvalidShare,
}

const SHARE_PREFIX: &str = "$share/";

/// Validates a topic name as used in PUBLISH and wills (no wildcards, at least one byte).
#[inline]
pub fn validate_topic_name(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    check_name_chars(topic.as_bytes())
}

/// The character rules of a topic name, without the non-empty rule (a v5 PUBLISH may
/// carry an empty name together with a topic alias).
#[inline]
pub(crate) fn check_name_chars(topic: &[u8]) -> Result<(), TopicError> {
    if topic.len() > u16::MAX as usize {
        return Err(TopicError::TooLong);
    }
    for &b in topic {
        if b == b'+' || b == b'#' {
            return Err(TopicError::WildcardInName);
        }
        if b == 0 {
            return Err(TopicError::Nul);
        }
    }
    Ok(())
}

/// Validates a topic filter, including the `$share/{group}/{filter}` form.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    if filter.len() > u16::MAX as usize {
        return Err(TopicError::TooLong);
    }
    if let Some(rest) = filter.strip_prefix(SHARE_PREFIX) {
        let (group, inner) = rest.split_once('/').ok_or(TopicError::InvalidShare)?;
        if group.is_empty() || group.contains(['+', '#']) || inner.is_empty() {
            return Err(TopicError::InvalidShare);
        }
        return check_filter_levels(inner.as_bytes());
    }
    if filter == "$share" {
        return Err(TopicError::InvalidShare);
    }
    check_filter_levels(filter.as_bytes())
}

/// One pass over the filter: `#` only as the whole last level, `+` only as a whole
/// level, no U+0000.
fn check_filter_levels(filter: &[u8]) -> Result<(), TopicError> {
    let mut level_start = 0;
    for (i, &b) in filter.iter().enumerate() {
        match b {
            b'/' => level_start = i + 1,
            b'#' if i != level_start || i + 1 != filter.len() => {
                return Err(TopicError::MisplacedMultiLevel)
            }
            b'+' if i != level_start || filter.get(i + 1).is_some_and(|&n| n != b'/') => {
                return Err(TopicError::MisplacedSingleLevel)
            }
            0 => return Err(TopicError::Nul),
            _ => {}
        }
    }
    Ok(())
}

/// Whether a filter contains a wildcard level.
pub fn has_wildcard(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

/// A parsed `$share/{group}/{filter}` subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedFilter<'a> {
    pub group: &'a str,
    pub filter: &'a str,
}

/// Splits a shared subscription into share name and filter; `None` for an ordinary
/// filter. Assumes `filter` passed `validate_topic_filter`.
pub fn parse_shared(filter: &str) -> Option<SharedFilter<'_>> {
    let rest = filter.strip_prefix(SHARE_PREFIX)?;
    let (group, filter) = rest.split_once('/')?;
    Some(SharedFilter { group, filter })
}

/// Whether `filter` matches `topic` (spec 4.7). Topics starting with `$` are not
/// matched by filters starting with a wildcard (4.7.2). Both are assumed valid; a
/// shared filter must be unwrapped with `parse_shared` first.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_topic_name("a/b").is_ok());
        assert!(validate_topic_name("/").is_ok());
        assert_eq!(validate_topic_name(""), Err(TopicError::Empty));
        assert_eq!(validate_topic_name("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(validate_topic_name("#"), Err(TopicError::WildcardInName));
        assert_eq!(validate_topic_name("a\0b"), Err(TopicError::Nul));
    }

    #[test]
    fn filters() {
        for ok in [
            "#",
            "+",
            "a/#",
            "+/+/#",
            "/+",
            "a//b",
            "$SYS/#",
            "$share/g/a/+",
            "$share/g/#",
        ] {
            assert_eq!(validate_topic_filter(ok), Ok(()), "{ok}");
        }
        let bad = [
            ("", TopicError::Empty),
            ("a/#/b", TopicError::MisplacedMultiLevel),
            ("a#", TopicError::MisplacedMultiLevel),
            ("a+/b", TopicError::MisplacedSingleLevel),
            ("$share/g", TopicError::InvalidShare),
            ("$share//a", TopicError::InvalidShare),
            ("$share/g+/a", TopicError::InvalidShare),
            ("$share/g/", TopicError::InvalidShare),
            ("$share", TopicError::InvalidShare),
        ];
        for (f, e) in bad {
            assert_eq!(validate_topic_filter(f), Err(e), "{f}");
        }
    }

    #[test]
    fn shared() {
        assert_eq!(
            parse_shared("$share/grp/a/+"),
            Some(SharedFilter {
                group: "grp",
                filter: "a/+"
            })
        );
        assert_eq!(parse_shared("a/b"), None);
    }

    #[test]
    fn matching() {
        let cases = [
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/ranking",
                true,
            ),
            ("sport/#", "sport", true),
            ("sport/tennis/+", "sport/tennis/player1", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false),
            ("sport/+", "sport", false),
            ("sport/+", "sport/", true),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            ("#", "$SYS/x", false),
            ("+/monitor/Clients", "$SYS/monitor/Clients", false),
            ("$SYS/#", "$SYS/monitor/Clients", true),
            ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
        ];
        for (f, t, want) in cases {
            assert_eq!(matches(f, t), want, "{f} vs {t}");
        }
    }
}
