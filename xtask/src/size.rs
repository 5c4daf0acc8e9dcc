//! The per-function size report: what each kilobyte of the shipped wasm
//! buys. `cargo xtask build` writes `dist/size-report.txt` beside
//! `sizes.json`.
//!
//! `wasm-opt -Oz` drops the name section, so the report is read from a
//! twin built with the same passes and `-g` (names kept; the code is the
//! same): each function body's size from the code section, its name from
//! the name section, demangled, and grouped by the crate its path starts
//! with. Data segments are counted apart.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use wasmparser::{Name, NameSectionReader, Parser, Payload};

/// Sizes read from one module.
pub struct Breakdown {
    /// `(name, body bytes)` of every defined function, largest first.
    pub functions: Vec<(String, usize)>,
    /// Bytes of data segments.
    pub data: usize,
    /// The module's size.
    pub total: usize,
}

/// Reads function and data sizes from a module that has a name section.
pub fn breakdown(bytes: &[u8]) -> Result<Breakdown, String> {
    let mut imported = 0u32;
    let mut bodies: Vec<usize> = Vec::new();
    let mut names: BTreeMap<u32, String> = BTreeMap::new();
    let mut data = 0;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| format!("not a wasm module: {e}"))? {
            Payload::ImportSection(reader) => {
                for import in reader {
                    let import = import.map_err(|e| e.to_string())?;
                    if matches!(import.ty, wasmparser::TypeRef::Func(_)) {
                        imported += 1;
                    }
                }
            }
            Payload::CodeSectionEntry(body) => bodies.push(body.range().len()),
            Payload::DataSection(reader) => {
                for segment in reader {
                    data += segment.map_err(|e| e.to_string())?.data.len();
                }
            }
            Payload::CustomSection(section) if section.name() == "name" => {
                let reader = NameSectionReader::new(wasmparser::BinaryReader::new(
                    section.data(),
                    section.data_offset(),
                ));
                for name in reader {
                    if let Ok(Name::Function(map)) = name {
                        for naming in map.into_iter().flatten() {
                            names.insert(naming.index, naming.name.to_owned());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let mut functions: Vec<(String, usize)> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, size)| {
            let index = imported + i as u32;
            let name = names
                .get(&index)
                .map(|n| format!("{:#}", rustc_demangle::demangle(n)))
                .unwrap_or_else(|| format!("func[{index}]"));
            (name, size)
        })
        .collect();
    functions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(Breakdown {
        functions,
        data,
        total: bytes.len(),
    })
}

/// The crate a demangled function name belongs to: the first path segment
/// (inside `<… as …>` the implementing type's).
pub fn crate_of(name: &str) -> &str {
    let name = name.trim_start_matches('<').trim_start_matches('&');
    let name = name.strip_prefix("mut ").unwrap_or(name);
    let end = name
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(name.len());
    match &name[..end] {
        "" => "(other)",
        head => head,
    }
}

/// The report for the named modules, in text.
pub fn report(modules: &[(&str, &Breakdown)], top: usize) -> String {
    let mut out = String::from(
        "# Per-function size report (cargo xtask build)\n\
         # Bytes of each function body after wasm-opt -Oz, before gzip.\n",
    );
    for (label, b) in modules {
        let code: usize = b.functions.iter().map(|f| f.1).sum();
        let _ = writeln!(
            out,
            "\n## {label}: {} bytes — code {code} in {} functions, data {}",
            b.total,
            b.functions.len(),
            b.data
        );
        let mut crates: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (name, size) in &b.functions {
            let c = crates.entry(crate_of(name)).or_default();
            c.0 += size;
            c.1 += 1;
        }
        let mut crates: Vec<_> = crates.into_iter().collect();
        crates.sort_by_key(|c| std::cmp::Reverse(c.1.0));
        let _ = writeln!(out, "\n### by crate\n");
        for (name, (bytes, count)) in crates {
            let share = 100.0 * bytes as f64 / code.max(1) as f64;
            let _ = writeln!(out, "{bytes:>8} {share:>5.1}% {count:>5} fns  {name}");
        }
        let _ = writeln!(out, "\n### largest {top} functions\n");
        for (name, size) in b.functions.iter().take(top) {
            let share = 100.0 * *size as f64 / code.max(1) as f64;
            let short: String = name.chars().take(160).collect();
            let _ = writeln!(out, "{size:>8} {share:>5.1}%  {short}");
        }
    }
    out
}

/// Writes `dist/size-report.txt` from the named twins.
pub fn write(dist: &Path, modules: &[(&str, &Path)]) -> Result<(), String> {
    let mut read = Vec::new();
    for (label, path) in modules {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        read.push((*label, breakdown(&bytes)?));
    }
    let refs: Vec<(&str, &Breakdown)> = read.iter().map(|(l, b)| (*l, b)).collect();
    std::fs::write(dist.join("size-report.txt"), report(&refs, 60)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crates_come_from_the_first_path_segment() {
        assert_eq!(
            crate_of("outbox_core::engine::Engine::cycle"),
            "outbox_core"
        );
        assert_eq!(
            crate_of("<alloc::vec::Vec<T> as core::clone::Clone>::clone"),
            "alloc"
        );
        assert_eq!(crate_of("<&mut T as core::fmt::Write>::write_str"), "T");
        assert_eq!(crate_of("func[12]"), "func");
        assert_eq!(crate_of(""), "(other)");
    }

    #[test]
    fn a_module_with_names_is_broken_down_by_function() {
        // (module (import "m" "f" (func)) (func $small) (func $big i32.const 1 drop …)
        //  (data (i32.const 0) "abc")) with a name section, written by hand.
        let wasm = wat_module();
        let b = breakdown(&wasm).unwrap();
        assert_eq!(b.data, 3);
        assert_eq!(b.functions.len(), 2);
        assert_eq!(b.functions[0].0, "big");
        assert!(b.functions[0].1 > b.functions[1].1);
        assert_eq!(b.functions[1].0, "small");
        let text = report(&[("test", &b)], 10);
        assert!(text.contains("big") && text.contains("data 3"), "{text}");
    }

    /// A tiny module, byte by byte.
    fn wat_module() -> Vec<u8> {
        fn section(id: u8, body: &[u8]) -> Vec<u8> {
            let mut s = vec![id, body.len() as u8];
            s.extend_from_slice(body);
            s
        }
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        m.extend(section(1, &[1, 0x60, 0, 0])); // one type: () -> ()
        m.extend(section(2, &[1, 1, b'm', 1, b'f', 0, 0])); // import m.f: func type 0
        m.extend(section(3, &[2, 0, 0])); // two functions of type 0
        m.extend(section(5, &[1, 0, 1])); // memory, min 1
        let small = [2, 0, 0x0b];
        let big = [8, 0, 0x41, 1, 0x1a, 0x41, 2, 0x1a, 0x0b];
        let mut code = vec![2];
        code.extend_from_slice(&small);
        code.extend_from_slice(&big);
        m.extend(section(10, &code));
        m.extend(section(11, &[1, 0, 0x41, 0, 0x0b, 3, b'a', b'b', b'c']));
        // name section: function names (subsection 1): 1 → "small", 2 → "big"
        let names = [
            2, 1, 5, b's', b'm', b'a', b'l', b'l', 2, 3, b'b', b'i', b'g',
        ];
        let mut sub = vec![1, names.len() as u8];
        sub.extend_from_slice(&names);
        let mut custom = vec![4, b'n', b'a', b'm', b'e'];
        custom.extend(sub);
        m.extend(section(0, &custom));
        m
    }
}
