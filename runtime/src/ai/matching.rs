//! Ranked matching of an investigator's words against the event catalog: which actions,
//! categories, families, audit subcategories or single event types a question names.
//!
//! Every target has phrases: its `terms` (our words, matched as a run of nearby words in
//! any order, one word of slack) and its title (matched as a bag of concepts, scored by how
//! much of the title's weight the question covers, rarer concepts weighing more). The
//! targets are then chosen greedily: the one that explains most of the question's
//! still-unexplained words first, then the better match, then the broader kind (a family
//! before an action before a category before a single event type before an audit
//! subcategory). Targets that tie exactly are taken together (their events are united); a chosen
//! target also absorbs the question's other words it knows, so a qualifier ("logons *with
//! explicit credentials*") narrows instead of adding a second event kind.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::LazyLock;

use super::words::concepts;
use crate::knowledge::{self, Catalog};
use crate::vocab::{Action, Category, Outcome};

/// What a phrase names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Target {
    /// A family of event types (index in [`Catalog::families`]).
    Family(usize),
    /// An action of the vocabulary.
    Action(Action),
    /// A category.
    Category(Category),
    /// A Windows audit subcategory (index in [`Catalog::subcategories`]).
    Subcategory(usize),
    /// One event type (index in [`Catalog::event_types`]).
    Entry(usize),
}

impl Target {
    /// Broader kinds win ties.
    fn priority(self) -> u8 {
        match self {
            Target::Family(_) => 5,
            Target::Action(_) => 4,
            Target::Category(_) => 3,
            Target::Entry(_) => 2,
            Target::Subcategory(_) => 1,
        }
    }

    /// The event types it stands for (none for actions and categories).
    pub(crate) fn event_types(self, c: &Catalog) -> Vec<usize> {
        match self {
            Target::Family(i) => c.families[i].members.clone(),
            Target::Subcategory(i) => c.subcategories[i].members.clone(),
            Target::Entry(i) => vec![i],
            Target::Action(_) | Target::Category(_) => Vec::new(),
        }
    }
}

#[derive(Debug)]
struct Phrase {
    target: Target,
    concepts: Vec<String>,
    /// Matched as a bag with partial coverage (titles), else as a run (terms).
    bag: bool,
    /// The outcome the phrase says ("failed logon").
    outcome: Option<Outcome>,
}

#[derive(Debug, Default)]
struct Index {
    phrases: Vec<Phrase>,
    weight: HashMap<String, f64>,
    vocab: HashMap<Target, HashSet<String>>,
    by_concept: HashMap<String, Vec<usize>>,
}

/// Concepts of a title that only say how the event ended.
const OUTCOME_CONCEPTS: &[&str] = &["success", "fail", "accept"];

/// Least share of a title's weight a question must cover to name it.
const BAG_THRESHOLD: f64 = 0.7;

static INDEX: LazyLock<Index> = LazyLock::new(|| build(knowledge::catalog()));

fn build(c: &Catalog) -> Index {
    let mut ix = Index::default();
    let add = |ix: &mut Index, target: Target, text: &str, bag: bool, outcome: Option<Outcome>| {
        let cs = concepts(text);
        if cs.is_empty() {
            return;
        }
        ix.vocab
            .entry(target)
            .or_default()
            .extend(cs.iter().cloned());
        ix.phrases.push(Phrase {
            target,
            concepts: cs,
            bag,
            outcome,
        });
    };
    for (i, f) in c.families.iter().enumerate() {
        add(&mut ix, Target::Family(i), &f.title, false, None);
        for t in &f.terms {
            add(&mut ix, Target::Family(i), t, false, None);
        }
    }
    for a in &c.actions {
        let t = Target::Action(a.action);
        add(&mut ix, t, &a.title, false, None);
        for term in &a.terms {
            add(&mut ix, t, term, false, None);
        }
        for term in &a.failure {
            add(&mut ix, t, term, false, Some(Outcome::Failure));
        }
        for term in &a.success {
            add(&mut ix, t, term, false, Some(Outcome::Success));
        }
    }
    for cat in &c.categories {
        let t = Target::Category(cat.category);
        for term in &cat.terms {
            add(&mut ix, t, term, false, None);
        }
    }
    for (i, s) in c.subcategories.iter().enumerate() {
        if s.members.is_empty() {
            continue;
        }
        add(&mut ix, Target::Subcategory(i), &s.name, false, None);
        for term in &s.terms {
            add(&mut ix, Target::Subcategory(i), term, false, None);
        }
    }
    for (i, e) in c.event_types.iter().enumerate() {
        // a one-word title ("Error") names nothing on its own
        if concepts(&e.title).len() > 1 {
            add(&mut ix, Target::Entry(i), &e.title, true, None);
        }
        for term in &e.terms {
            add(&mut ix, Target::Entry(i), term, false, None);
        }
    }
    // Rarer concepts weigh more: ln(1 + targets / targets knowing the concept).
    let mut df: HashMap<&str, usize> = HashMap::new();
    for words in ix.vocab.values() {
        for w in words {
            *df.entry(w.as_str()).or_default() += 1;
        }
    }
    let n = ix.vocab.len() as f64;
    ix.weight = df
        .into_iter()
        .map(|(w, d)| (w.to_string(), (1.0 + n / d as f64).ln()))
        .collect();
    for (p, phrase) in ix.phrases.iter().enumerate() {
        for cpt in phrase.concepts.iter().collect::<BTreeSet<_>>() {
            ix.by_concept.entry(cpt.clone()).or_default().push(p);
        }
    }
    ix
}

/// Whether `concept` is a word the catalog knows.
pub(crate) fn known(concept: &str) -> bool {
    INDEX.weight.contains_key(concept)
}

/// One choice: the targets (united), the outcome their phrase says, and the question's
/// words they explain (indexes into the question's words).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Chosen {
    /// The targets, united.
    pub targets: Vec<Target>,
    /// The outcome the matched phrase says.
    pub outcome: Option<Outcome>,
    /// Words (their indexes in the question) the choice explains, absorbed ones included.
    pub words: BTreeSet<usize>,
}

/// A target's best phrase match.
#[derive(Debug, Clone)]
struct Match {
    target: Target,
    score: f64,
    explained: BTreeSet<usize>,
    outcome: Option<Outcome>,
}

/// The targets named by `seq`: the question's remaining words as (word index, concept).
pub(crate) fn choose(seq: &[(usize, String)]) -> Vec<Chosen> {
    let ix = &*INDEX;
    // Explanations count concepts (items of `seq`), not words: "ProcessAccess" is two.
    let seq: Vec<(usize, &(usize, String))> =
        seq.iter().filter(|(_, c)| known(c)).enumerate().collect();
    if seq.is_empty() {
        return Vec::new();
    }
    let present: HashSet<&str> = seq.iter().map(|(_, (_, c))| c.as_str()).collect();
    let mut candidates: BTreeSet<usize> = BTreeSet::new();
    for (_, (_, c)) in &seq {
        if let Some(list) = ix.by_concept.get(c.as_str()) {
            candidates.extend(list.iter().copied());
        }
    }
    let mut best: HashMap<Target, Match> = HashMap::new();
    for p in candidates {
        let phrase = &ix.phrases[p];
        let found = if phrase.bag {
            bag_match(ix, phrase, &seq, &present)
        } else {
            run_match(phrase, &seq).map(|e| (1.0, e))
        };
        let Some((score, explained)) = found else {
            continue;
        };
        let better = match best.get(&phrase.target) {
            None => true,
            Some(m) => (explained.len(), score) > (m.explained.len(), m.score),
        };
        if better {
            best.insert(
                phrase.target,
                Match {
                    target: phrase.target,
                    score,
                    explained,
                    outcome: phrase.outcome,
                },
            );
        }
    }

    let mut matches: Vec<Match> = best.into_values().collect();
    matches.sort_by_key(|m| m.target);
    let mut explained: BTreeSet<usize> = BTreeSet::new();
    let mut out = Vec::new();
    loop {
        let key = |m: &Match, explained: &BTreeSet<usize>| {
            let new = m.explained.difference(explained).count();
            (new, (m.score * 1e6).round() as i64, m.target.priority())
        };
        let Some(top) = matches
            .iter()
            .map(|m| key(m, &explained))
            .filter(|k| k.0 > 0)
            .max()
        else {
            break;
        };
        let group: Vec<&Match> = matches
            .iter()
            .filter(|m| key(m, &explained) == top)
            .collect();
        // Only targets explaining the very same words are united.
        let first_new: BTreeSet<usize> =
            group[0].explained.difference(&explained).copied().collect();
        let group: Vec<&Match> = group
            .into_iter()
            .filter(|m| {
                m.explained
                    .difference(&explained)
                    .copied()
                    .collect::<BTreeSet<_>>()
                    == first_new
            })
            .collect();
        let mut items: BTreeSet<usize> = first_new;
        for m in &group {
            let vocab = &ix.vocab[&m.target];
            items.extend(
                seq.iter()
                    .filter(|(k, (_, c))| vocab.contains(c) && !explained.contains(k))
                    .map(|(k, _)| *k),
            );
        }
        explained.extend(items.iter().copied());
        out.push(Chosen {
            targets: group.iter().map(|m| m.target).collect(),
            outcome: group.iter().find_map(|m| m.outcome),
            words: items.iter().map(|&k| seq[k].1.0).collect(),
        });
        let taken: Vec<Target> = group.iter().map(|m| m.target).collect();
        matches.retain(|m| !taken.contains(&m.target));
    }
    out
}

/// A term's words next to each other in the question, in any order, with at most one other
/// word among them (two-word terms: none). Returns the indexes of the concepts in `seq`.
fn run_match(phrase: &Phrase, seq: &[(usize, &(usize, String))]) -> Option<BTreeSet<usize>> {
    let k = phrase.concepts.len();
    let span = if k >= 3 { k + 1 } else { k };
    for a in 0..seq.len() {
        if !phrase.concepts.contains(&seq[a].1.1) {
            continue;
        }
        let mut needed: Vec<&String> = phrase.concepts.iter().collect();
        let mut used = BTreeSet::new();
        for (k, (_, c)) in seq.iter().skip(a).take(span) {
            if let Some(pos) = needed.iter().position(|n| *n == c) {
                needed.swap_remove(pos);
                used.insert(*k);
            }
        }
        if needed.is_empty() {
            return Some(used);
        }
    }
    None
}

/// A title as a bag: the share of its weight the question covers.
fn bag_match(
    ix: &Index,
    phrase: &Phrase,
    seq: &[(usize, &(usize, String))],
    present: &HashSet<&str>,
) -> Option<(f64, BTreeSet<usize>)> {
    let title: BTreeSet<&str> = phrase.concepts.iter().map(String::as_str).collect();
    let covered: BTreeSet<&str> = title
        .iter()
        .copied()
        .filter(|c| present.contains(c))
        .collect();
    if covered.is_empty() || (covered.len() < 2 && title.len() > 1) {
        return None;
    }
    let w = |c: &str| ix.weight.get(c).copied().unwrap_or(0.0);
    // How it ended is the title's business only when the question says it: "did the
    // firewall service start" names "…started successfully", "ssh logins" both outcomes.
    let total: f64 = title
        .iter()
        .filter(|c| present.contains(*c) || !OUTCOME_CONCEPTS.contains(*c))
        .map(|c| w(c))
        .sum();
    // …but of two titles otherwise alike, the one that adds no failure is the better name
    let unsaid: f64 = title
        .iter()
        .filter(|c| !present.contains(*c))
        .map(|c| match *c {
            "success" => 0.005,
            "fail" | "accept" => 0.01,
            _ => 0.0,
        })
        .sum();
    let score = covered.iter().map(|c| w(c)).sum::<f64>() / total.max(f64::EPSILON) - unsaid;
    if score < BAG_THRESHOLD {
        return None;
    }
    let explained = seq
        .iter()
        .filter(|(_, (_, c))| covered.contains(c.as_str()))
        .map(|(k, _)| *k)
        .collect();
    Some((score, explained))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::words::concept;

    fn names(q: &str) -> Vec<Vec<String>> {
        let c = knowledge::catalog();
        let seq: Vec<(usize, String)> = q
            .split_whitespace()
            .enumerate()
            .filter_map(|(i, w)| concept(w).map(|c| (i, c)))
            .collect();
        choose(&seq)
            .into_iter()
            .map(|ch| {
                ch.targets
                    .into_iter()
                    .map(|t| match t {
                        Target::Family(i) => format!("family {}", c.families[i].key),
                        Target::Action(a) => format!("action {a}"),
                        Target::Category(k) => format!("category {k}"),
                        Target::Subcategory(i) => format!("sub {}", c.subcategories[i].name),
                        Target::Entry(i) => c.event_types[i].key(),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn broader_kinds_win_ties_and_more_words_win_over_fewer() {
        assert_eq!(names("logons"), [["action logon"]]);
        assert_eq!(
            names("explicit credentials logon"),
            [["action explicit_credentials"]]
        );
        assert_eq!(
            names("NTLM authentication"),
            [["windows:Microsoft-Windows-Security-Auditing:4776"]]
        );
        assert_eq!(names("time changed"), [["family time_changed"]]);
        assert!(names("hello there").is_empty());
    }
}
