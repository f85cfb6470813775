//! The crate's floors: every import among the files of `src/` goes down, never up or around.
//!
//! The test reads the source text (no compiler help): every `crate::…`, `super::…` and
//! child-module path outside comments is resolved to the file that defines it, following the
//! re-exports of `lib.rs` and `mod.rs` files, and the resulting file graph must be acyclic and
//! respect [`FLOORS`]. DESIGN.md ("What lives where?") is the prose version of this table.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The rooms of `src/`, lowest first. A file may import files of its own room (acyclically)
/// and of rooms on lower floors; rooms on one floor do not import each other.
const FLOORS: &[&[&str]] = &[
    &["error"],
    &["value"],
    &["id"],
    &["observe"],
    &["fingerprint", "details"],
    &["analyze"],
    &["event"],
    &["recur"],
    &["state"],
    &["source"],
    &["plan"],
    &["store"],
    &["engine"],
    &["schedule"],
    &["ics"],
    &["providers", "stores"],
    &["testkit"],
];

/// One file of `src/`: its module path and what it says.
struct File {
    module: Vec<String>,
    /// `lib.rs` or `mod.rs`: its children are the modules it declares.
    is_dir_module: bool,
    code: Vec<String>,
}

fn module_of(src: &Path, path: &Path) -> (Vec<String>, bool) {
    let rel = path.strip_prefix(src).unwrap_or(path);
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs").to_owned();
    if stem == "mod" || stem == "lib" {
        (parts, true)
    } else {
        parts.push(stem);
        (parts, false)
    }
}

fn read_tree(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_tree(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The code of a line without its `//` comment (string literals in this crate that hold `//`
/// hold no paths either, so cutting at the first `//` outside a string is enough).
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut in_str = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'/' if !in_str && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
        i += 1;
    }
    line
}

/// Paths written after `prefix` (`crate::`, `super::`, `child::`) in `code`, expanded over
/// `{a, b::c}` groups: each as its segments, without the prefix.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = code[from..].find(prefix) {
        let start = from + pos;
        from = start + prefix.len();
        let before = code.as_bytes()[..start].last().copied();
        if before.is_some_and(|b| is_ident_byte(b) || b == b':') {
            continue;
        }
        expand(&code[from..], Vec::new(), &mut out);
    }
    out
}

/// Reads one path (or group) at the start of `rest`, prefixed by `base`.
fn expand(rest: &str, base: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut segments = base;
    let mut rest = rest;
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            for item in split_group(group) {
                expand(item.trim(), segments.clone(), out);
            }
            return;
        }
        let len = rest.bytes().take_while(|&b| is_ident_byte(b)).count();
        if len == 0 {
            break;
        }
        segments.push(rest[..len].to_owned());
        match rest[len..].strip_prefix("::") {
            Some(next) => rest = next,
            None => break,
        }
    }
    if !segments.is_empty() {
        out.push(segments);
    }
}

/// The top-level items of a `{…}` group (up to its closing brace).
fn split_group(group: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, b) in group.bytes().enumerate() {
        match b {
            b'{' => depth += 1,
            b'}' if depth == 0 => {
                items.push(&group[start..i]);
                return items;
            }
            b'}' => depth -= 1,
            b',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
}

/// Child modules a directory module declares (`mod x;`, `pub(crate) mod x;`).
fn declared_children(file: &File) -> Vec<String> {
    file.code
        .iter()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub(crate) ").or_else(|| l.strip_prefix("pub ")).unwrap_or(l);
            let name = l.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.to_owned())
        })
        .collect()
}

struct Crate {
    files: Vec<File>,
    by_module: BTreeMap<Vec<String>, usize>,
    /// For directory modules: re-exported name → the child path it comes from.
    reexports: BTreeMap<usize, BTreeMap<String, Vec<String>>>,
}

impl Crate {
    fn load(src: &Path) -> Self {
        let mut paths = Vec::new();
        read_tree(src, &mut paths);
        let mut files = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap();
            let (module, is_dir_module) = module_of(src, &path);
            let code = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .map(|l| strip_comment(l).to_owned())
                .collect();
            files.push(File { module, is_dir_module, code });
        }
        let by_module = files.iter().enumerate().map(|(i, f)| (f.module.clone(), i)).collect();
        let mut krate = Self { files, by_module, reexports: BTreeMap::new() };
        for i in 0..krate.files.len() {
            if krate.files[i].is_dir_module {
                let map = krate.reexports_of(i);
                krate.reexports.insert(i, map);
            }
        }
        krate
    }

    /// `pub use child::…` lines of a directory module, as absolute paths.
    fn reexports_of(&self, i: usize) -> BTreeMap<String, Vec<String>> {
        let file = &self.files[i];
        let children = declared_children(file);
        let mut map = BTreeMap::new();
        for line in &file.code {
            let l = line.trim();
            let Some(rest) = l.strip_prefix("pub use ").or_else(|| l.strip_prefix("pub(crate) use ")) else {
                continue;
            };
            let mut paths = Vec::new();
            if let Some(abs) = rest.strip_prefix("crate::") {
                expand(abs, Vec::new(), &mut paths);
            } else if children.iter().any(|c| rest.starts_with(&format!("{c}::"))) {
                expand(rest, file.module.clone(), &mut paths);
            }
            for path in paths {
                if let Some(name) = path.last() {
                    map.insert(name.clone(), path);
                }
            }
        }
        map
    }

    /// The file an absolute path lives in.
    fn resolve(&self, path: &[String], depth: usize) -> Option<usize> {
        let mut best = None;
        for len in (0..=path.len()).rev() {
            if let Some(&i) = self.by_module.get(&path[..len]) {
                best = Some((i, len));
                break;
            }
        }
        let (i, len) = best?;
        if depth < 8
            && let (Some(next), Some(map)) = (path.get(len), self.reexports.get(&i))
            && let Some(target) = map.get(next)
            && target.as_slice() != path
        {
            let mut full = target.clone();
            full.extend(path[len + 1..].iter().cloned());
            return self.resolve(&full, depth + 1).or(Some(i));
        }
        Some(i)
    }

    /// Edges: file → the files it imports (without itself), with the written path.
    fn edges(&self) -> BTreeMap<usize, BTreeMap<usize, String>> {
        let mut edges: BTreeMap<usize, BTreeMap<usize, String>> = BTreeMap::new();
        for (i, file) in self.files.iter().enumerate() {
            if file.module.is_empty() {
                continue; // lib.rs: wiring, it names every module
            }
            let children = if file.is_dir_module { declared_children(file) } else { Vec::new() };
            let mut inline_module = false;
            for line in &file.code {
                let t = line.trim_start();
                if (t.starts_with("mod ") || t.starts_with("pub mod ") || t.starts_with("pub(crate) mod "))
                    && t.trim_end().ends_with('{')
                {
                    inline_module = true;
                }
                let mut found: Vec<Vec<String>> = paths_after(line, "crate::");
                // `super::` names the parent module; inside an inline `mod tests`, the file.
                let super_base: Vec<String> =
                    if inline_module { file.module.clone() } else { file.module[..file.module.len() - 1].to_vec() };
                for rel in paths_after(line, "super::") {
                    let mut p = super_base.clone();
                    p.extend(rel);
                    found.push(p);
                }
                for child in &children {
                    for rel in paths_after(line, &format!("{child}::")) {
                        let mut p = file.module.clone();
                        p.push(child.clone());
                        p.extend(rel);
                        found.push(p);
                    }
                }
                for path in found {
                    if let Some(j) = self.resolve(&path, 0)
                        && j != i
                        && !self.files[j].module.is_empty()
                    {
                        edges.entry(i).or_default().entry(j).or_insert_with(|| path.join("::"));
                    }
                }
            }
        }
        edges
    }

    fn name(&self, i: usize) -> String {
        let f = &self.files[i];
        let base = f.module.join("/");
        if f.is_dir_module { format!("{base}/mod.rs") } else { format!("{base}.rs") }
    }
}

fn floor_of(module: &[String]) -> Option<usize> {
    let room = module.first()?;
    FLOORS.iter().position(|rooms| rooms.contains(&room.as_str()))
}

fn src_crate() -> Crate {
    Crate::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

#[test]
fn every_room_of_src_has_a_floor() {
    let krate = src_crate();
    let missing: BTreeSet<String> = krate
        .files
        .iter()
        .filter(|f| !f.module.is_empty() && floor_of(&f.module).is_none())
        .map(|f| f.module[0].clone())
        .collect();
    assert!(missing.is_empty(), "rooms without a floor in tests/layers.rs: {missing:?}");
}

#[test]
fn imports_go_down_the_floors() {
    let krate = src_crate();
    let mut bad = String::new();
    for (&from, targets) in &krate.edges() {
        let (Some(a), m) = (floor_of(&krate.files[from].module), &krate.files[from].module) else { continue };
        for (&to, written) in targets {
            let Some(b) = floor_of(&krate.files[to].module) else { continue };
            let same_room = krate.files[to].module.first() == m.first();
            if b > a || (b == a && !same_room) {
                let _ = writeln!(bad, "{} imports {} (`{written}`)", krate.name(from), krate.name(to));
            }
        }
    }
    assert!(bad.is_empty(), "imports that go up or across the floors:\n{bad}");
}

#[test]
fn no_import_cycles_among_files() {
    fn visit(
        i: usize,
        edges: &BTreeMap<usize, BTreeMap<usize, String>>,
        color: &mut [u8],
        stack: &mut Vec<usize>,
        cycles: &mut Vec<Vec<usize>>,
    ) {
        color[i] = 1;
        stack.push(i);
        for j in edges.get(&i).map(|m| m.keys().copied().collect::<Vec<_>>()).unwrap_or_default() {
            if color[j] == 1 {
                let from = stack.iter().position(|&s| s == j).unwrap_or(0);
                cycles.push(stack[from..].to_vec());
            } else if color[j] == 0 {
                visit(j, edges, color, stack, cycles);
            }
        }
        stack.pop();
        color[i] = 2;
    }
    let krate = src_crate();
    let edges = krate.edges();
    // Depth-first search with colors; a grey target is a cycle.
    let n = krate.files.len();
    let mut color = vec![0u8; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut cycles = Vec::new();
    for i in 0..n {
        if color[i] == 0 {
            visit(i, &edges, &mut color, &mut stack, &mut cycles);
        }
    }
    let shown: Vec<String> =
        cycles.iter().map(|c| c.iter().map(|&i| krate.name(i)).collect::<Vec<_>>().join(" → ")).collect();
    assert!(shown.is_empty(), "import cycles:\n{}", shown.join("\n"));
}

#[test]
fn the_checker_sees_cycles_and_upward_imports() {
    // The checker itself: a cycle written in the crate's own style is found.
    let file = |module: &[&str], dir: bool, code: &str| File {
        module: module.iter().map(|s| (*s).to_owned()).collect(),
        is_dir_module: dir,
        code: code.lines().map(str::to_owned).collect(),
    };
    let files = vec![
        file(&[], true, "mod a;\nmod p;"),
        file(&["a"], false, "use crate::p::Thing;\nuse crate::{p::{x::{Y, Z}, W}};"),
        file(&["p"], true, "mod x;\npub use x::Y;\nuse crate::a::Other;"),
        file(&["p", "x"], false, "use super::Config;\n#[cfg(test)]\nmod tests {\n    use super::*;\n}"),
    ];
    let by_module = files.iter().enumerate().map(|(i, f)| (f.module.clone(), i)).collect();
    let mut krate = Crate { files, by_module, reexports: BTreeMap::new() };
    for i in [0, 2] {
        let map = krate.reexports_of(i);
        krate.reexports.insert(i, map);
    }
    let edges = krate.edges();
    let targets = |i: usize| edges.get(&i).map(|m| m.keys().copied().collect::<Vec<_>>()).unwrap_or_default();
    // a → p (Thing, W) and a → p/x (Y, Z: through the group and the re-export).
    assert_eq!(targets(1), vec![2, 3]);
    // p → a, p → x; x → p (its `super::Config`), but not x → x from its tests.
    assert_eq!(targets(2), vec![1, 3]);
    assert_eq!(targets(3), vec![2]);
    assert_eq!(strip_comment("let u = \"http://x\"; // crate::a"), "let u = \"http://x\"; ");
}
