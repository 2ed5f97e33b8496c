//! Words to concepts: how the local translator compares an investigator's words with the
//! event catalog's titles and terms. A word becomes a *concept* — lower case, a light
//! suffix stemming ("groups", "grouped" → `group`), and a few synonyms folded together
//! ("modified", "updated" → `chang`; "wiped", "erased" → `clear`; "login", "sign-in" →
//! `logon`) — and words that carry no meaning about events ("the", "was", "show") are
//! dropped. The same function reads both sides, so the exact stems do not matter, only that
//! they agree.

/// Words that say nothing about which events are meant.
const STOP: &[&str] = &[
    "a",
    "an",
    "the",
    "was",
    "were",
    "is",
    "are",
    "be",
    "been",
    "being",
    "has",
    "have",
    "had",
    "to",
    "of",
    "on",
    "in",
    "at",
    "by",
    "for",
    "from",
    "with",
    "without",
    "into",
    "onto",
    "and",
    "or",
    "not",
    "no",
    "that",
    "this",
    "these",
    "those",
    "it",
    "its",
    "their",
    "his",
    "her",
    "them",
    "they",
    "he",
    "she",
    "we",
    "you",
    "i",
    "me",
    "my",
    "our",
    "us",
    "show",
    "list",
    "find",
    "get",
    "give",
    "what",
    "which",
    "who",
    "whom",
    "whose",
    "when",
    "where",
    "why",
    "how",
    "did",
    "do",
    "does",
    "done",
    "any",
    "all",
    "every",
    "each",
    "some",
    "please",
    "can",
    "could",
    "would",
    "should",
    "there",
    "here",
    "up",
    "down",
    "out",
    "as",
    "than",
    "then",
    "so",
    "such",
    "one",
    "ones",
    "while",
    "made",
    "make",
    "happened",
    "happen",
    "occurred",
    "anyone",
    "someone",
    "somebody",
    "anybody",
    "ever",
    "also",
    "just",
    "only",
    "about",
    "via",
    "over",
    "per",
    "whether",
    "if",
    "been",
    "them",
    "much",
    "many",
    "times",
    "let",
    "see",
    "tell",
    "look",
    "looking",
    "shows",
    "following",
    "whose",
];

/// Folded synonyms and irregular forms, looked up before stemming.
const FOLD: &[(&str, &str)] = &[
    ("login", "logon"),
    ("logins", "logon"),
    ("logon", "logon"),
    ("logons", "logon"),
    ("signin", "logon"),
    ("signins", "logon"),
    ("logonid", "logonid"),
    ("logout", "logoff"),
    ("logouts", "logoff"),
    ("logoff", "logoff"),
    ("logoffs", "logoff"),
    ("signout", "logoff"),
    ("new", "creat"),
    ("newly", "creat"),
    ("modified", "chang"),
    ("modify", "chang"),
    ("modifies", "chang"),
    ("modification", "chang"),
    ("modifications", "chang"),
    ("updated", "chang"),
    ("update", "chang"),
    ("updates", "chang"),
    ("altered", "chang"),
    ("alter", "chang"),
    ("adjusted", "chang"),
    ("wiped", "clear"),
    ("wipe", "clear"),
    ("erased", "clear"),
    ("erase", "clear"),
    ("purged", "clear"),
    ("removal", "remov"),
    ("removals", "remov"),
    ("failure", "fail"),
    ("failures", "fail"),
    ("unsuccessful", "fail"),
    ("successful", "success"),
    ("successfully", "success"),
    ("succeeded", "success"),
    ("successes", "success"),
    ("denied", "deny"),
    ("denies", "deny"),
    ("lockout", "lock"),
    ("lockouts", "lock"),
    ("locked", "lock"),
    ("installation", "install"),
    ("installations", "install"),
    ("installs", "install"),
    ("startup", "start"),
    ("startups", "start"),
    ("launched", "start"),
    ("launch", "start"),
    ("stopped", "stop"),
    ("stopping", "stop"),
    ("shut", "stop"),
    ("shutdown", "stop"),
    ("shutdowns", "stop"),
    ("shutting", "stop"),
    ("ran", "run"),
    ("running", "run"),
    ("runs", "run"),
    ("queries", "query"),
    ("queried", "query"),
    ("lookup", "query"),
    ("lookups", "query"),
    ("policies", "policy"),
    ("membership", "member"),
    ("memberships", "member"),
    ("logging", "log"),
    ("logged", "log"),
    ("authentication", "authent"),
    ("authentications", "authent"),
    ("authenticated", "authent"),
    ("authenticate", "authent"),
    ("configuration", "config"),
    ("configurations", "config"),
    ("configured", "config"),
    ("reconfigured", "config"),
    ("config", "config"),
    ("settings", "setting"),
    ("entry", "entry"),
    ("entries", "entry"),
    ("connections", "connect"),
    ("connection", "connect"),
    ("connected", "connect"),
    ("connecting", "connect"),
    ("privileged", "privileg"),
    ("privileges", "privileg"),
    ("privilege", "privileg"),
];

/// Whether `word` (lower case) carries no meaning about events.
pub(crate) fn is_stop(word: &str) -> bool {
    STOP.contains(&word)
}

/// The concept of one word, or `None` for a word that carries no meaning here.
pub(crate) fn concept(word: &str) -> Option<String> {
    let w = word
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_ascii_lowercase();
    let w = w.strip_suffix("'s").unwrap_or(&w).to_string();
    if w.is_empty() || STOP.contains(&w.as_str()) {
        return None;
    }
    if let Some((_, c)) = FOLD.iter().find(|(f, _)| *f == w) {
        return Some((*c).to_string());
    }
    Some(stem(&w))
}

/// A light suffix stemmer: enough that the question's and the catalog's forms of a word
/// meet ("creation", "created", "create" → `creat`).
fn stem(w: &str) -> String {
    if w.len() <= 3 || w.bytes().any(|b| b.is_ascii_digit()) {
        return w.to_string();
    }
    for suffix in [
        "ions", "ion", "ings", "ing", "ied", "ies", "ed", "es", "s", "e",
    ] {
        if let Some(stem) = w.strip_suffix(suffix) {
            if stem.len() < 3 {
                continue;
            }
            if suffix == "s" && (stem.ends_with('s') || stem.ends_with('u')) {
                // "process", "status": not plurals
                continue;
            }
            if matches!(suffix, "ied" | "ies") {
                return format!("{stem}y");
            }
            // "stopped" → "stop", "planned" → "plan"
            let b = stem.as_bytes();
            if matches!(suffix, "ed" | "ing")
                && b.len() >= 4
                && b[b.len() - 1] == b[b.len() - 2]
                && !matches!(b[b.len() - 1], b's' | b'l')
            {
                return stem[..stem.len() - 1].to_string();
            }
            return stem.to_string();
        }
    }
    w.to_string()
}

/// Splits `ProcessAccess` into `Process Access` (catalog titles written as identifiers).
fn split_camel(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase() || (prev.is_ascii_uppercase() && next_lower) {
                out.push(' ');
            }
        }
        out.push(c);
    }
    out
}

/// Multi-word forms folded into one word before reading, so "logged on", "log in" and
/// "sign-in" read like "logon".
const PHRASES: &[(&str, &str)] = &[
    ("logged on", "loggedon"),
    ("logged in", "loggedon"),
    ("logged onto", "loggedon"),
    ("logged into", "loggedon"),
    ("signed in", "loggedon"),
    ("logged off", "loggedoff"),
    ("logged out", "loggedoff"),
    ("signed out", "loggedoff"),
    ("log on", "logon"),
    ("log in", "logon"),
    ("log onto", "logon"),
    ("log into", "logon"),
    ("sign in", "logon"),
    ("sign ins", "logon"),
    ("sign on", "logon"),
    ("log off", "logoff"),
    ("log out", "logoff"),
    ("sign out", "logoff"),
    ("shut down", "shutdown"),
    ("start up", "startup"),
];

/// Lower-cased words of `text` with the multi-word forms of [`PHRASES`] folded.
fn words(text: &str) -> Vec<String> {
    let spaced: String = text
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' || c == '+' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let raw: Vec<String> = spaced
        .split_whitespace()
        .map(|w| w.trim_matches('\'').to_ascii_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    fold_phrases(&raw)
}

/// Folds the multi-word forms of [`PHRASES`] in a list of lower-case words.
pub(crate) fn fold_phrases(raw: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    'outer: while i < raw.len() {
        for (phrase, folded) in PHRASES {
            let parts: Vec<&str> = phrase.split(' ').collect();
            if raw.len() >= i + parts.len()
                && parts.iter().enumerate().all(|(k, p)| raw[i + k] == *p)
            {
                out.push((*folded).to_string());
                i += parts.len();
                continue 'outer;
            }
        }
        out.push(raw[i].clone());
        i += 1;
    }
    out
}

/// The concepts of a catalog title or term, in order (identifiers split, `+` and
/// punctuation dropped).
pub(crate) fn concepts(text: &str) -> Vec<String> {
    words(&split_camel(text))
        .iter()
        .flat_map(|w| w.split('+').map(str::to_string).collect::<Vec<_>>())
        .filter_map(|w| concept(&w))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_of_a_word_meet() {
        for group in [
            &["created", "creation", "create", "creates", "new"][..],
            &["changes", "changed", "modified", "updated", "change"],
            &["groups", "group"],
            &["processes", "process"],
            &["logins", "logon", "logons", "login"],
            &["stopped", "stops", "stop", "shutdown"],
            &["cleared", "wiped", "erased", "clear"],
            &["validated", "validation", "validate"],
            &["services", "service"],
            &["policies", "policy"],
            &["deleted", "deletion", "delete"],
            &["lockout", "locked", "lockouts"],
        ] {
            let seen: Vec<Option<String>> = group.iter().map(|w| concept(w)).collect();
            assert!(
                seen.windows(2).all(|p| p[0] == p[1] && p[0].is_some()),
                "{group:?}: {seen:?}"
            );
        }
        assert_eq!(concept("the"), None);
        assert_ne!(concept("removed"), concept("deleted"));
    }

    #[test]
    fn titles_read_as_concepts() {
        assert_eq!(concepts("ProcessAccess"), ["process", "access"]);
        assert_eq!(
            concepts("A member was added to a security-enabled local group"),
            ["member", "add", "security", "enabl", "local", "group"]
        );
        assert_eq!(concepts("User logged on"), ["user", "loggedon"]);
        assert_eq!(concepts("failed to log on"), ["fail", "logon"]);
        assert_eq!(
            concepts("The event logging service has shut down"),
            ["event", "log", "servic", "stop"]
        );
        assert_eq!(concepts("COM+ Catalog"), ["com", "catalog"]);
    }
}
