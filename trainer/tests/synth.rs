//! `synth`: reproducibility, exact answers, size limits, buckets and the LLaVA JSONL format.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use trainer::synth::{
    generate_sample, write_dataset, Bucket, Expr, FontSet, Op, Params, Sample, SynthConfig,
    TableQuery, Task, TextOnly, MAX_AREA, MAX_PATCHES, MAX_SIDE, MIN_SIDE, WORDS,
};

fn cfg(seed: u64, ratio: f64) -> SynthConfig {
    let mut c = SynthConfig::new(seed, None).unwrap();
    c.text_only_ratio = ratio;
    c
}

fn samples(seed: u64, n: u64, ratio: f64) -> Vec<Sample> {
    let c = cfg(seed, ratio);
    (0..n).map(|i| generate_sample(&c, i).unwrap()).collect()
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    out.insert(
        "data.jsonl".to_string(),
        std::fs::read(dir.join("data.jsonl")).unwrap(),
    );
    for e in std::fs::read_dir(dir.join("images")).unwrap() {
        let e = e.unwrap();
        out.insert(
            format!("images/{}", e.file_name().to_string_lossy()),
            std::fs::read(e.path()).unwrap(),
        );
    }
    out
}

#[test]
fn same_seed_gives_identical_bytes() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let c = cfg(7, 0.2);
    let sa = write_dataset(&c, a.path(), 40).unwrap();
    let sb = write_dataset(&cfg(7, 0.2), b.path(), 40).unwrap();
    assert_eq!(sa, sb);
    let (fa, fb) = (files(a.path()), files(b.path()));
    assert_eq!(fa.len(), 1 + sa.images as usize);
    assert_eq!(fa, fb);
}

#[test]
fn different_seeds_differ() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_dataset(&cfg(1, 0.0), a.path(), 10).unwrap();
    write_dataset(&cfg(2, 0.0), b.path(), 10).unwrap();
    let (fa, fb) = (files(a.path()), files(b.path()));
    assert_ne!(fa["data.jsonl"], fb["data.jsonl"]);
    let same_png = fa
        .iter()
        .filter(|(k, v)| k.ends_with(".png") && fb.get(*k) == Some(v))
        .count();
    assert_eq!(same_png, 0);
}

#[test]
fn record_does_not_depend_on_count() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_dataset(&cfg(3, 0.25), a.path(), 8).unwrap();
    write_dataset(&cfg(3, 0.25), b.path(), 24).unwrap();
    let (fa, fb) = (files(a.path()), files(b.path()));
    let la = String::from_utf8(fa["data.jsonl"].clone()).unwrap();
    let lb = String::from_utf8(fb["data.jsonl"].clone()).unwrap();
    assert!(lb.starts_with(&la));
    for (k, v) in fa.iter().filter(|(k, _)| k.ends_with(".png")) {
        assert_eq!(Some(v), fb.get(k), "{k}");
    }
}

/// Exact rational evaluation of a rendered expression (× − ÷ and a/b fractions).
struct Parser {
    toks: Vec<char>,
    pos: usize,
}

fn reduce(n: i64, d: i64) -> (i64, i64) {
    fn g(a: i64, b: i64) -> i64 {
        if b == 0 {
            a.abs()
        } else {
            g(b, a % b)
        }
    }
    let k = g(n, d).max(1);
    (n / k, d / k)
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.toks.get(self.pos).copied()
    }
    fn expr(&mut self) -> (i64, i64) {
        let mut v = self.term();
        while let Some(c @ ('+' | '-')) = self.peek() {
            self.pos += 1;
            let r = self.term();
            v = if c == '+' {
                reduce(v.0 * r.1 + r.0 * v.1, v.1 * r.1)
            } else {
                reduce(v.0 * r.1 - r.0 * v.1, v.1 * r.1)
            };
        }
        v
    }
    fn term(&mut self) -> (i64, i64) {
        let mut v = self.factor();
        while let Some(c @ ('*' | '/')) = self.peek() {
            self.pos += 1;
            let r = self.factor();
            v = if c == '*' {
                reduce(v.0 * r.0, v.1 * r.1)
            } else {
                reduce(v.0 * r.1, v.1 * r.0)
            };
        }
        v
    }
    fn factor(&mut self) -> (i64, i64) {
        if self.peek() == Some('(') {
            self.pos += 1;
            let v = self.expr();
            assert_eq!(self.peek(), Some(')'));
            self.pos += 1;
            return v;
        }
        let mut n = 0i64;
        let start = self.pos;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
            n = n * 10 + d as i64;
            self.pos += 1;
        }
        assert!(self.pos > start, "number expected in {:?}", self.toks);
        (n, 1)
    }
}

fn eval_shown(shown: &str) -> String {
    let s = shown.trim_end_matches('?').trim_end().trim_end_matches('=');
    let toks: Vec<char> = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '\u{2212}' => '-',
            '\u{00D7}' => '*',
            '\u{00F7}' => '/',
            c => c,
        })
        .collect();
    let mut p = Parser { toks, pos: 0 };
    let (n, d) = p.expr();
    assert_eq!(p.pos, p.toks.len(), "trailing input in {shown:?}");
    assert!(n >= 0 && d > 0, "{shown:?} = {n}/{d}");
    if d == 1 {
        n.to_string()
    } else {
        format!("{n}/{d}")
    }
}

#[test]
fn answers_match_the_generation_parameters() {
    let words: BTreeSet<&str> = WORDS.iter().copied().collect();
    let mut kinds = BTreeSet::new();
    for s in samples(11, 400, 0.3) {
        assert!(s.answer.is_ascii() && !s.answer.is_empty(), "{s:?}");
        assert!(s.question.is_ascii(), "{}", s.question);
        let expect = match &s.params {
            Params::Number { value, shown } => {
                assert_eq!(shown.replace(',', "").parse::<u32>().unwrap(), *value);
                assert!(*value <= 999_999);
                shown.clone()
            }
            Params::Arith { expr, shown } => {
                let e = eval_shown(shown);
                assert_eq!(e, expr.answer(), "{shown}");
                match *expr {
                    Expr::Bin { op: Op::Mul, a, b } => assert!(a <= 12 && b <= 12),
                    Expr::Bin { op: Op::Div, a, b } => assert_eq!(a % b, 0),
                    Expr::Frac { n1, n2, den, .. } => assert!(n1 < den && n2 < den),
                    _ => {}
                }
                kinds.insert(format!("{:?}", std::mem::discriminant(expr)));
                e
            }
            Params::Text { text } => {
                assert!(text.split(' ').all(|w| words.contains(w)), "{text}");
                text.clone()
            }
            Params::Table {
                columns,
                rows,
                cells,
                query,
            } => {
                assert!((2..=3).contains(&columns.len()) && (2..=3).contains(&rows.len()));
                assert!(cells.iter().flatten().all(|v| *v <= 99));
                match *query {
                    TableQuery::Cell { row, col } => {
                        assert!(
                            s.question.contains(&columns[col]) && s.question.contains(&rows[row])
                        );
                        cells[row][col].to_string()
                    }
                    TableQuery::RowTotal { row } => {
                        assert!(s.question.contains(&rows[row]));
                        cells[row].iter().sum::<u32>().to_string()
                    }
                }
            }
            Params::Receipt { items, total, .. } => {
                assert!((2..=4).contains(&items.len()));
                assert_eq!(items.iter().map(|i| i.1).sum::<u32>(), *total);
                total.to_string()
            }
            Params::TextOnly(t) => {
                assert!(s.image.is_none() && !s.question.contains("<image>"));
                match t {
                    TextOnly::Arith { op, a, b } => match op {
                        Op::Add => a + b,
                        Op::Sub => a - b,
                        Op::Mul => a * b,
                        Op::Div => a / b,
                    }
                    .to_string(),
                    TextOnly::Reverse { word } => word.chars().rev().collect(),
                    TextOnly::Larger { a, b } => (*a).max(*b).to_string(),
                    TextOnly::Smaller { a, b } => (*a).min(*b).to_string(),
                    TextOnly::After { n } => (n + 1).to_string(),
                    TextOnly::Before { n } => (n - 1).to_string(),
                    TextOnly::Letters { word } => word.chars().count().to_string(),
                }
            }
        };
        assert_eq!(s.answer, expect, "{:?}", s.params);
    }
    assert_eq!(kinds.len(), 3, "all arith expression kinds appear");
}

#[test]
fn images_within_limits_and_buckets_consistent() {
    for s in samples(5, 300, 0.1) {
        let Some(img) = &s.image else {
            assert!(s.bucket.is_none() && s.font.is_none() && s.task.is_none());
            continue;
        };
        let (w, h) = img.dimensions();
        assert!(
            (MIN_SIDE..=MAX_SIDE).contains(&w) && (MIN_SIDE..=MAX_SIDE).contains(&h),
            "{w}x{h}"
        );
        assert!(w * h <= MAX_AREA, "{w}x{h}");
        assert!(w.div_ceil(16) * h.div_ceil(16) <= MAX_PATCHES, "{w}x{h}");
        let r = w as f64 / h as f64;
        match s.bucket.unwrap() {
            Bucket::Wide => assert!(r >= 2.5, "{w}x{h}"),
            Bucket::Tall => assert!(h as f64 / w as f64 >= 1.6, "{w}x{h}"),
            Bucket::Square => assert!(r > 0.6 && r < 2.5 && (h as f64 / w as f64) < 1.6, "{w}x{h}"),
        }
        assert_eq!(Bucket::classify(w, h), s.bucket.unwrap());
        // Readable contrast: the darkest and lightest pixels are far apart.
        let lum: Vec<u32> = img
            .pixels()
            .map(|p| (p.0[0] as u32 * 3 + p.0[1] as u32 * 6 + p.0[2] as u32) / 10)
            .collect();
        let (lo, hi) = (lum.iter().min().unwrap(), lum.iter().max().unwrap());
        assert!(hi - lo >= 100, "low contrast {lo}..{hi}");
    }
}

#[test]
fn every_task_bucket_and_several_fonts_appear() {
    let mut seen: BTreeMap<Task, BTreeSet<Bucket>> = BTreeMap::new();
    let mut fonts = BTreeSet::new();
    for s in samples(9, 400, 0.0) {
        seen.entry(s.task.unwrap())
            .or_default()
            .insert(s.bucket.unwrap());
        fonts.insert(s.font.unwrap());
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    for t in [Task::Numbers, Task::Arith, Task::Text, Task::Table] {
        assert_eq!(seen[&t].len(), 3, "{t}: {:?}", seen[&t]);
    }
    assert!(seen[&Task::Receipt].contains(&Bucket::Tall));
    assert!(fonts.len() >= 3, "{fonts:?}");
    if Path::new(trainer::synth::DEFAULT_FONTS_DIR)
        .join("DejaVuSans.ttf")
        .exists()
    {
        assert!(fonts.len() >= 5, "{fonts:?}");
        assert!(fonts.contains("DejaVuSans"));
    }
}

#[test]
fn jsonl_is_llava_format() {
    let dir = tempfile::tempdir().unwrap();
    let stats = write_dataset(&cfg(4, 0.2), dir.path(), 50).unwrap();
    assert_eq!(stats.records, 50);
    assert_eq!(
        stats.text_only, 10,
        "exactly floor(N * ratio) text-only records"
    );
    let text = std::fs::read_to_string(dir.path().join("data.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 50);
    for (i, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["id"], format!("{i:06}"));
        let conv = v["conversations"].as_array().unwrap();
        assert_eq!(conv.len(), 2);
        assert_eq!(conv[0]["from"], "human");
        assert_eq!(conv[1]["from"], "gpt");
        let human = conv[0]["value"].as_str().unwrap();
        let answer = conv[1]["value"].as_str().unwrap();
        assert!(!answer.is_empty() && answer.is_ascii());
        match v.get("image") {
            Some(img) => {
                let rel = img.as_str().unwrap();
                assert_eq!(rel, format!("images/{i:06}.png"));
                let decoded = image::open(dir.path().join(rel)).unwrap();
                assert!(decoded.width() >= MIN_SIDE);
                assert!(human.starts_with("<image>\n") && human.matches("<image>").count() == 1);
                let task: Task = v["task"].as_str().unwrap().parse().unwrap();
                let _ = task;
                let b = v["bucket"].as_str().unwrap();
                assert!(["wide", "square", "tall"].contains(&b));
                assert!(!v["font"].as_str().unwrap().is_empty());
            }
            None => {
                assert!(!human.contains("<image>"));
                assert_eq!(v["task"], "text_only");
                assert!(v.get("bucket").is_none() && v.get("font").is_none());
            }
        }
    }
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    let err = Task::parse_list("numbers,sudoku").unwrap_err().to_string();
    assert!(err.contains("sudoku"), "{err}");
    assert!(Task::parse_list(" , ").is_err());
    assert_eq!(
        Task::parse_list("arith, text,arith").unwrap(),
        vec![Task::Arith, Task::Text]
    );
    let mut c = cfg(0, 1.5);
    assert!(generate_sample(&c, 0).is_err());
    c.text_only_ratio = f64::NAN;
    assert!(c.validate().is_err());
    c.text_only_ratio = 0.0;
    c.tasks.clear();
    assert!(c.validate().is_err());
    // --count 0: an empty data.jsonl.
    let dir = tempfile::tempdir().unwrap();
    let stats = write_dataset(&cfg(0, 0.0), dir.path(), 0).unwrap();
    assert_eq!(stats.records, 0);
    assert_eq!(
        std::fs::read(dir.path().join("data.jsonl")).unwrap().len(),
        0
    );
}

#[test]
fn builtin_fonts_alone_work() {
    let fonts = FontSet::load(Path::new("/nonexistent/fonts")).unwrap();
    assert!(fonts.warning().unwrap().contains("/nonexistent/fonts"));
    assert_eq!(fonts.names(), vec!["Ubuntu-Light", "Hack-Regular"]);
    let c = SynthConfig {
        seed: 1,
        tasks: vec![Task::Arith],
        text_only_ratio: 0.0,
        fonts,
    };
    let mut seen = BTreeSet::new();
    for i in 0..60 {
        let s = generate_sample(&c, i).unwrap();
        seen.insert(s.font.clone().unwrap());
        assert!(s.image.is_some());
    }
    assert_eq!(seen.len(), 2);
}

#[test]
fn only_requested_tasks() {
    let mut c = cfg(2, 0.0);
    c.tasks = vec![Task::Receipt, Task::Table];
    for i in 0..30 {
        let t = generate_sample(&c, i).unwrap().task.unwrap();
        assert!(t == Task::Receipt || t == Task::Table);
    }
}

#[test]
fn thousands_of_samples_all_lay_out() {
    for seed in [100, 200] {
        let c = cfg(seed, 0.0);
        for i in 0..1500 {
            let s = generate_sample(&c, i).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            let img = s.image.unwrap();
            assert!(img.width().div_ceil(16) * img.height().div_ceil(16) <= MAX_PATCHES);
        }
    }
}
