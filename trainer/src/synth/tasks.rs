//! The tasks: structured parameters, their exact answers, question phrasings and layouts.

use super::fonts::FontSet;
use super::render::{place, render, Layout, Pen, Style};
use super::words::{ITEMS, SHOPS, TABLE_COLUMNS, TABLE_ROWS, WORDS};
use super::{Bucket, Sample, Task};
use image::RgbImage;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;

/// Arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

impl Op {
    /// The glyph drawn in images (real math signs).
    pub fn glyph(self) -> char {
        match self {
            Op::Add => '+',
            Op::Sub => '\u{2212}',
            Op::Mul => '\u{00D7}',
            Op::Div => '\u{00F7}',
        }
    }

    pub fn apply(self, a: u32, b: u32) -> u32 {
        match self {
            Op::Add => a + b,
            Op::Sub => a - b,
            Op::Mul => a * b,
            Op::Div => a / b,
        }
    }
}

/// An arithmetic expression of the `arith` task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `a op b` (subtraction non-negative, division exact).
    Bin { op: Op, a: u32, b: u32 },
    /// `(a inner b) × c`, or `c × (a inner b)` when `c_first`.
    Paren {
        inner: Op,
        a: u32,
        b: u32,
        c: u32,
        c_first: bool,
    },
    /// `n1/den op n2/den` with op `+` or `−` (result ≥ 0).
    Frac { op: Op, n1: u32, n2: u32, den: u32 },
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Expr {
    /// The exact answer: an integer, or a reduced fraction `p/q`.
    pub fn answer(&self) -> String {
        match *self {
            Expr::Bin { op, a, b } => op.apply(a, b).to_string(),
            Expr::Paren { inner, a, b, c, .. } => (inner.apply(a, b) * c).to_string(),
            Expr::Frac { op, n1, n2, den } => {
                let num = op.apply(n1, n2);
                let g = gcd(num, den);
                let (p, q) = (num / g, den / g);
                if num == 0 {
                    "0".into()
                } else if q == 1 {
                    p.to_string()
                } else {
                    format!("{p}/{q}")
                }
            }
        }
    }
}

/// Which cell or row a table question asks about (indices into rows/columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableQuery {
    Cell { row: usize, col: usize },
    RowTotal { row: usize },
}

/// A text-only question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextOnly {
    Arith { op: Op, a: u32, b: u32 },
    Reverse { word: String },
    Larger { a: u32, b: u32 },
    Smaller { a: u32, b: u32 },
    After { n: u32 },
    Before { n: u32 },
    Letters { word: String },
}

/// The structured values a sample was generated from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Params {
    /// `shown` is exactly what is drawn (maybe with thousands separators) and the answer.
    Number {
        value: u32,
        shown: String,
    },
    /// `shown` is the expression as one line, with the math glyphs drawn (stacked layouts
    /// draw the same tokens on several lines).
    Arith {
        expr: Expr,
        shown: String,
    },
    Text {
        text: String,
    },
    Table {
        columns: Vec<String>,
        rows: Vec<String>,
        cells: Vec<Vec<u32>>,
        query: TableQuery,
    },
    Receipt {
        title: Option<String>,
        items: Vec<(String, u32)>,
        total_label: String,
        total: u32,
    },
    TextOnly(TextOnly),
}

fn pick<R: Rng>(rng: &mut R, options: &[&str]) -> String {
    options.choose(rng).copied().unwrap_or_default().to_string()
}

/// A bucket by weight (wide, square, tall), then the others as fallbacks.
fn buckets<R: Rng>(rng: &mut R, weights: [u32; 3]) -> Vec<Bucket> {
    let total: u32 = weights.iter().sum();
    let mut x = rng.random_range(0..total);
    let mut first = Bucket::Square;
    for (b, w) in Bucket::ALL.into_iter().zip(weights) {
        if x < w {
            first = b;
            break;
        }
        x -= w;
    }
    let mut out = vec![first];
    out.extend(Bucket::ALL.into_iter().filter(|b| *b != first));
    out
}

/// Renders a layout into the first bucket it fits, shrinking the text from `max_digit` px
/// down to 14 px before moving to the next bucket.
fn draw<'f, R: Rng>(
    rng: &mut R,
    fonts: &'f FontSet,
    face: usize,
    order: &[Bucket],
    max_digit: u32,
    mk: &dyn Fn(&Pen<'f>, Bucket) -> Layout,
) -> Option<(RgbImage, Bucket)> {
    let style = Style::random(rng);
    let margin = if style.border {
        rng.random_range(6..=9)
    } else {
        rng.random_range(3..=9)
    };
    let start = rng.random_range(14..=max_digit.max(14));
    // Sizes to try per bucket: from `start` down to 14 px; then, as a last resort, smaller.
    let mut sizes: Vec<u32> = (14..=start).rev().step_by(2).collect();
    if sizes.last() != Some(&14) {
        sizes.push(14);
    }
    let passes: [&[u32]; 2] = [&sizes, &[12, 10]];
    for pass in passes {
        for &bucket in order {
            for &d in pass {
                let pen = Pen::with_digit_height(fonts, face, d as f32);
                let layout = mk(&pen, bucket);
                if let Some(bounds) = layout.bounds(fonts) {
                    if let Some(pl) = place(rng, bounds, bucket, margin) {
                        return Some((render(rng, fonts, &layout, pl, &style), bucket));
                    }
                }
            }
        }
    }
    None
}

fn one_line(pen: &Pen, text: &str) -> Layout {
    let mut l = Layout::default();
    l.text(pen, 0.0, 0.0, text);
    l
}

fn group_thousands(v: u32) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One image sample of `task`; None only if no layout fits (never expected).
pub(crate) fn image_sample<R: Rng>(rng: &mut R, fonts: &FontSet, task: Task) -> Option<Sample> {
    let face = rng.random_range(0..fonts.len());
    let (params, question, answer, drawn) = match task {
        Task::Numbers => {
            let digits = rng.random_range(1..=6u32);
            let value = if digits == 1 {
                rng.random_range(0..=9)
            } else {
                rng.random_range(10u32.pow(digits - 1)..10u32.pow(digits))
            };
            let shown = if value >= 1000 && rng.random_bool(0.4) {
                group_thousands(value)
            } else {
                value.to_string()
            };
            let q = pick(
                rng,
                &[
                    "What number is shown?",
                    "Read the number.",
                    "What number is in the image?",
                    "Which number is written here?",
                    "What is the number?",
                ],
            );
            let order = buckets(rng, [45, 35, 20]);
            let s = shown.clone();
            let drawn = draw(rng, fonts, face, &order, 30, &move |pen, _| {
                one_line(pen, &s)
            });
            (
                Params::Number {
                    value,
                    shown: shown.clone(),
                },
                q,
                shown,
                drawn,
            )
        }
        Task::Text => {
            let n = if rng.random_bool(0.6) { 1 } else { 2 };
            let text = WORDS
                .choose_multiple(rng, n)
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            let q = pick(
                rng,
                &[
                    "What does the text say?",
                    "Read the text.",
                    "What is written in the image?",
                    "Transcribe the text.",
                    "What text is shown?",
                ],
            );
            let order = buckets(rng, [45, 35, 20]);
            let s = text.clone();
            let drawn = draw(rng, fonts, face, &order, 30, &move |pen, _| {
                one_line(pen, &s)
            });
            (Params::Text { text: text.clone() }, q, text, drawn)
        }
        Task::Arith => arith(rng, fonts, face),
        Task::Table => table(rng, fonts, face),
        Task::Receipt => receipt(rng, fonts, face),
    };
    let (img, bucket) = drawn?;
    Some(Sample {
        image: Some(img),
        question,
        answer,
        task: Some(task),
        bucket: Some(bucket),
        font: Some(fonts.face(face).name.clone()),
        params,
    })
}

type Built = (Params, String, String, Option<(RgbImage, Bucket)>);

fn arith<R: Rng>(rng: &mut R, fonts: &FontSet, face: usize) -> Built {
    let operand = |rng: &mut R| {
        if rng.random_bool(0.9) {
            rng.random_range(0..=99)
        } else {
            rng.random_range(100..=999)
        }
    };
    let kind = rng.random_range(0..100u32);
    let expr = if kind < 25 {
        Expr::Bin {
            op: Op::Add,
            a: operand(rng),
            b: operand(rng),
        }
    } else if kind < 45 {
        let (x, y) = (operand(rng), operand(rng));
        Expr::Bin {
            op: Op::Sub,
            a: x.max(y),
            b: x.min(y),
        }
    } else if kind < 65 {
        Expr::Bin {
            op: Op::Mul,
            a: rng.random_range(0..=12),
            b: rng.random_range(0..=12),
        }
    } else if kind < 77 {
        let b = rng.random_range(1..=12);
        Expr::Bin {
            op: Op::Div,
            a: b * rng.random_range(0..=12),
            b,
        }
    } else if kind < 87 {
        let inner = if rng.random_bool(0.6) {
            Op::Sub
        } else {
            Op::Add
        };
        let (x, y) = (rng.random_range(0..=20), rng.random_range(0..=20));
        let (a, b) = if inner == Op::Sub {
            (x.max(y), x.min(y))
        } else {
            (x, y)
        };
        Expr::Paren {
            inner,
            a,
            b,
            c: rng.random_range(1..=9),
            c_first: rng.random_bool(0.3),
        }
    } else {
        let den = rng.random_range(2..=12);
        let (n1, n2) = (rng.random_range(1..den), rng.random_range(1..den));
        if rng.random_bool(0.6) {
            Expr::Frac {
                op: Op::Add,
                n1,
                n2,
                den,
            }
        } else {
            Expr::Frac {
                op: Op::Sub,
                n1: n1.max(n2),
                n2: n1.min(n2),
                den,
            }
        }
    };
    let sp = if rng.random_bool(0.85) { " " } else { "" };
    let suffix = match rng.random_range(0..100) {
        0..40 => format!("{sp}={sp}?"),
        40..55 => format!("{sp}="),
        _ => String::new(),
    };
    let core = match &expr {
        Expr::Bin { op, a, b } => format!("{a}{sp}{}{sp}{b}", op.glyph()),
        Expr::Paren {
            inner,
            a,
            b,
            c,
            c_first,
        } => {
            let p = format!("({a}{sp}{}{sp}{b})", inner.glyph());
            let m = Op::Mul.glyph();
            if *c_first {
                format!("{c}{sp}{m}{sp}{p}")
            } else {
                format!("{p}{sp}{m}{sp}{c}")
            }
        }
        Expr::Frac { op, n1, n2, den } => format!("{n1}/{den}{sp}{}{sp}{n2}/{den}", op.glyph()),
    };
    let shown = format!("{core}{suffix}");
    let q = pick(
        rng,
        &[
            "What is the result?",
            "Compute this.",
            "Solve it.",
            "What does this equal?",
            "Calculate the answer.",
        ],
    );
    let order = buckets(rng, [40, 35, 25]);
    // Stacked column layout for a op b (tall/square), stacked fractions sometimes.
    let stack_bin = matches!(
        expr,
        Expr::Bin {
            op: Op::Add | Op::Sub | Op::Mul,
            ..
        }
    ) && rng.random_bool(0.8);
    let stack_frac = matches!(expr, Expr::Frac { .. }) && rng.random_bool(0.6);
    let question_mark = rng.random_bool(0.4);
    let rule_px = rng.random_range(1..=2) as f32;
    let e = expr.clone();
    let line = shown.clone();
    let mk = move |pen: &Pen, bucket: Bucket| -> Layout {
        match (&e, bucket) {
            (Expr::Bin { op, a, b }, Bucket::Tall | Bucket::Square) if stack_bin => {
                stacked(pen, *op, *a, *b, question_mark, rule_px)
            }
            (Expr::Frac { op, n1, n2, den }, Bucket::Tall | Bucket::Square) if stack_frac => {
                stacked_fracs(pen, *op, *n1, *n2, *den, &suffix, rule_px)
            }
            _ => one_line(pen, &line),
        }
    };
    let drawn = draw(rng, fonts, face, &order, 28, &mk);
    let answer = expr.answer();
    (Params::Arith { expr, shown }, q, answer, drawn)
}

/// ```text
///    37
/// +  45
/// ─────
///     ?
/// ```
fn stacked(pen: &Pen, op: Op, a: u32, b: u32, question: bool, rule: f32) -> Layout {
    let mut l = Layout::default();
    let (sa, sb, so) = (a.to_string(), b.to_string(), op.glyph().to_string());
    let (wa, wb, wo, gap) = (
        pen.width(&sa),
        pen.width(&sb),
        pen.width(&so),
        pen.width(" "),
    );
    let w = wa.max(wo + gap + wb);
    let dh = pen.digit_height();
    let pitch = dh * 1.5;
    let y1 = dh;
    let y2 = y1 + pitch;
    l.text(pen, w - wa, y1, &sa);
    l.text(pen, 0.0, y2, &so);
    l.text(pen, w - wb, y2, &sb);
    let ry = y2 + dh * 0.35;
    l.rect(0.0, ry, w, ry + rule);
    if question {
        let wq = pen.width("?");
        l.text(pen, w - wq, ry + rule + dh * 0.35 + dh, "?");
    }
    l
}

/// Fractions drawn as numerator over bar over denominator, with the operator on the axis.
fn stacked_fracs(pen: &Pen, op: Op, n1: u32, n2: u32, den: u32, suffix: &str, rule: f32) -> Layout {
    let mut l = Layout::default();
    let dh = pen.digit_height();
    let gap = dh * 0.3;
    let axis = dh * 1.3 + gap; // bar y
    let space = pen.width(" ");
    let mut x = 0.0;
    let frac = |l: &mut Layout, x: f32, n: u32| -> f32 {
        let (sn, sd) = (n.to_string(), den.to_string());
        let (wn, wd) = (pen.width(&sn), pen.width(&sd));
        let bw = wn.max(wd) + dh * 0.3;
        l.text(pen, x + (bw - wn) / 2.0, axis - gap, &sn);
        l.rect(x, axis, x + bw, axis + rule);
        l.text(pen, x + (bw - wd) / 2.0, axis + rule + gap + dh, &sd);
        bw
    };
    x += frac(&mut l, x, n1) + space;
    let base = axis + dh / 2.0;
    x += l.text(pen, x, base, &op.glyph().to_string()) + space;
    x += frac(&mut l, x, n2);
    let s = suffix.trim_start();
    if !s.is_empty() {
        l.text(pen, x + space, base, s);
    }
    l
}

fn table<R: Rng>(rng: &mut R, fonts: &FontSet, face: usize) -> Built {
    let colset = TABLE_COLUMNS.choose(rng).copied().unwrap_or(&["A", "B"]);
    let rowset = TABLE_ROWS.choose(rng).copied().unwrap_or(&["A", "B"]);
    let nc = rng.random_range(2..=3usize).min(colset.len());
    let nr = rng.random_range(2..=3usize).min(rowset.len());
    let c0 = rng.random_range(0..=colset.len() - nc);
    let r0 = rng.random_range(0..=rowset.len() - nr);
    let columns: Vec<String> = colset[c0..c0 + nc].iter().map(|s| s.to_string()).collect();
    let rows: Vec<String> = rowset[r0..r0 + nr].iter().map(|s| s.to_string()).collect();
    let cells: Vec<Vec<u32>> = (0..nr)
        .map(|_| (0..nc).map(|_| rng.random_range(0..=99)).collect())
        .collect();
    let row = rng.random_range(0..nr);
    let (query, q, answer) = if rng.random_bool(0.65) {
        let col = rng.random_range(0..nc);
        let (rn, cn) = (&rows[row], &columns[col]);
        let q = match rng.random_range(0..5) {
            0 => format!("What is the {cn} of {rn}?"),
            1 => format!("What is the value in row {rn}, column {cn}?"),
            2 => format!("What number is in the {cn} column for {rn}?"),
            3 => format!("Find the {cn} for {rn}."),
            _ => format!("What is {rn}'s {cn}?"),
        };
        (
            TableQuery::Cell { row, col },
            q,
            cells[row][col].to_string(),
        )
    } else {
        let rn = &rows[row];
        let q = match rng.random_range(0..4) {
            0 => format!("What is the total of row {rn}?"),
            1 => format!("What is the sum of row {rn}?"),
            2 => format!("Add up the numbers in row {rn}."),
            _ => format!("What do the values in row {rn} add up to?"),
        };
        (
            TableQuery::RowTotal { row },
            q,
            cells[row].iter().sum::<u32>().to_string(),
        )
    };
    let corner = pick(rng, &["", "", "Item", "Name"]);
    let full_grid = rng.random_bool(0.75);
    let center_nums = rng.random_bool(0.5);
    let padx_f = rng.random_range(0.25..0.6f32);
    let pady_f = rng.random_range(0.25..0.5f32);
    let rule = if rng.random_bool(0.8) { 1.0 } else { 2.0 };
    let (cols2, rows2, cells2) = (columns.clone(), rows.clone(), cells.clone());
    let mk = move |pen: &Pen, _| -> Layout {
        let mut l = Layout::default();
        let dh = pen.digit_height();
        let desc = pen.line_height() - pen.ascent();
        let (padx, pady) = (dh * padx_f, dh * pady_f);
        let mut grid: Vec<Vec<String>> = vec![std::iter::once(corner.clone())
            .chain(cols2.iter().cloned())
            .collect()];
        for (r, name) in rows2.iter().enumerate() {
            grid.push(
                std::iter::once(name.clone())
                    .chain(cells2[r].iter().map(|v| v.to_string()))
                    .collect(),
            );
        }
        let ncol = grid[0].len();
        let widths: Vec<f32> = (0..ncol)
            .map(|c| grid.iter().map(|r| pen.width(&r[c])).fold(0.0, f32::max) + 2.0 * padx)
            .collect();
        let row_h = pady + dh + desc + pady * 0.6;
        let total_w: f32 = widths.iter().sum();
        let total_h = row_h * grid.len() as f32;
        for (r, cells) in grid.iter().enumerate() {
            let top = r as f32 * row_h;
            let mut x = 0.0;
            for (c, s) in cells.iter().enumerate() {
                let tw = pen.width(s);
                let tx = if c == 0 || r == 0 {
                    x + padx
                } else if center_nums {
                    x + (widths[c] - tw) / 2.0
                } else {
                    x + widths[c] - padx - tw
                };
                l.text(pen, tx, top + pady + dh, s);
                x += widths[c];
            }
        }
        if full_grid {
            for r in 0..=grid.len() {
                let y = r as f32 * row_h;
                l.rect(0.0, y, total_w + rule, y + rule);
            }
            let mut x = 0.0;
            l.rect(x, 0.0, x + rule, total_h + rule);
            for cw in &widths {
                x += cw;
                l.rect(x, 0.0, x + rule, total_h + rule);
            }
        } else {
            for y in [0.0, row_h, total_h] {
                l.rect(0.0, y, total_w, y + rule);
            }
        }
        l
    };
    let order = buckets(rng, [30, 55, 15]);
    let drawn = draw(rng, fonts, face, &order, 22, &mk);
    (
        Params::Table {
            columns,
            rows,
            cells,
            query,
        },
        q,
        answer,
        drawn,
    )
}

fn receipt<R: Rng>(rng: &mut R, fonts: &FontSet, face: usize) -> Built {
    let n = rng.random_range(2..=4);
    let mut names: Vec<&str> = ITEMS.choose_multiple(rng, n).copied().collect();
    names.shuffle(rng);
    let items: Vec<(String, u32)> = names
        .iter()
        .map(|s| {
            (
                s.to_string(),
                if rng.random_bool(0.8) {
                    rng.random_range(1..=20)
                } else {
                    rng.random_range(21..=99)
                },
            )
        })
        .collect();
    let total: u32 = items.iter().map(|i| i.1).sum();
    let title = rng.random_bool(0.5).then(|| pick(rng, SHOPS));
    let total_label = if rng.random_bool(0.8) {
        "TOTAL".to_string()
    } else {
        "Total".to_string()
    };
    let q = pick(
        rng,
        &[
            "What is the total?",
            "How much is the total?",
            "What is the total on the receipt?",
            "What is the receipt total?",
            "How much is it in total?",
        ],
    );
    let dashes = rng.random_bool(0.5);
    let rule = rng.random_range(1..=2) as f32;
    let gap_chars = rng.random_range(1.0..3.0f32);
    let pitch_f = rng.random_range(1.0..1.3f32);
    let (items2, title2, label2) = (items.clone(), title.clone(), total_label.clone());
    let mk = move |pen: &Pen, _| -> Layout {
        let mut l = Layout::default();
        let dh = pen.digit_height();
        let pitch = pen.line_height() * pitch_f;
        let gap = pen.width(" ") * gap_chars;
        let tot = total.to_string();
        let mut w = pen.width(&label2) + gap + pen.width(&tot);
        for (name, price) in &items2 {
            w = w.max(pen.width(name) + gap + pen.width(&price.to_string()));
        }
        if let Some(t) = &title2 {
            w = w.max(pen.width(t));
        }
        let mut y = dh;
        if let Some(t) = &title2 {
            l.text(pen, (w - pen.width(t)) / 2.0, y, t);
            y += pitch * 1.3;
        }
        for (i, (name, price)) in items2.iter().enumerate() {
            if i > 0 {
                y += pitch;
            }
            let p = price.to_string();
            l.text(pen, 0.0, y, name);
            l.text(pen, w - pen.width(&p), y, &p);
        }
        let mid = y + (pitch * 1.5 - dh) / 2.0;
        if dashes {
            let dw = pen.width("-").max(1.0);
            let k = (w / dw).floor().max(1.0) as usize;
            l.text(pen, 0.0, mid + dh * 0.35, &"-".repeat(k));
        } else {
            l.rect(0.0, mid, w, mid + rule);
        }
        y += pitch * 1.5;
        l.text(pen, 0.0, y, &label2);
        l.text(pen, w - pen.width(&tot), y, &tot);
        l
    };
    let order = buckets(rng, [0, 35, 65]);
    let order: Vec<Bucket> = order
        .into_iter()
        .filter(|b| *b != Bucket::Wide)
        .chain([Bucket::Wide])
        .collect();
    let drawn = draw(rng, fonts, face, &order, 22, &mk);
    (
        Params::Receipt {
            title,
            items,
            total_label,
            total,
        },
        q,
        total.to_string(),
        drawn,
    )
}

/// A text-only record (no image).
pub(crate) fn text_only<R: Rng>(rng: &mut R) -> Sample {
    let word = |rng: &mut R| WORDS.choose(rng).copied().unwrap_or("cat").to_string();
    let kind = rng.random_range(0..100u32);
    let (p, q, a) = if kind < 35 {
        let (op, a, b) = match rng.random_range(0..4) {
            0 => (Op::Add, rng.random_range(0..=99), rng.random_range(0..=99)),
            1 => {
                let (x, y) = (rng.random_range(0..=99), rng.random_range(0..=99));
                (Op::Sub, x.max(y), x.min(y))
            }
            2 => (Op::Mul, rng.random_range(0..=12), rng.random_range(0..=12)),
            _ => {
                let b = rng.random_range(1..=12);
                (Op::Div, b * rng.random_range(0..=12), b)
            }
        };
        let forms: [String; 4] = match op {
            Op::Add => [
                format!("What is {a} + {b}?"),
                format!("What is {a} plus {b}?"),
                format!("Compute {a} + {b}."),
                format!("Add {a} and {b}."),
            ],
            Op::Sub => [
                format!("What is {a} - {b}?"),
                format!("What is {a} minus {b}?"),
                format!("Compute {a} - {b}."),
                format!("Subtract {b} from {a}."),
            ],
            Op::Mul => [
                format!("What is {a} * {b}?"),
                format!("What is {a} times {b}?"),
                format!("Multiply {a} by {b}."),
                format!("Compute {a} x {b}."),
            ],
            Op::Div => [
                format!("What is {a} / {b}?"),
                format!("What is {a} divided by {b}?"),
                format!("Divide {a} by {b}."),
                format!("Compute {a} / {b}."),
            ],
        };
        let q = forms.choose(rng).cloned().unwrap_or_default();
        (TextOnly::Arith { op, a, b }, q, op.apply(a, b).to_string())
    } else if kind < 50 {
        let w = word(rng);
        let q = match rng.random_range(0..4) {
            0 => format!("Spell the word {w} backwards."),
            1 => format!("Write {w} in reverse."),
            2 => format!("Reverse the letters of {w}."),
            _ => format!("What is {w} spelled backwards?"),
        };
        let a = w.chars().rev().collect();
        (TextOnly::Reverse { word: w }, q, a)
    } else if kind < 75 {
        let a = rng.random_range(0..=999u32);
        let mut b = if a >= 10 && rng.random_bool(0.3) {
            a.to_string()
                .chars()
                .rev()
                .collect::<String>()
                .parse()
                .unwrap_or(a + 1)
        } else {
            rng.random_range(0..=999)
        };
        if b == a {
            b = a + 1;
        }
        if kind < 65 {
            let q = match rng.random_range(0..3) {
                0 => format!("What is the larger number: {a} or {b}?"),
                1 => format!("Which is bigger, {a} or {b}?"),
                _ => format!("Which number is greater: {a} or {b}?"),
            };
            (TextOnly::Larger { a, b }, q, a.max(b).to_string())
        } else {
            let q = match rng.random_range(0..3) {
                0 => format!("What is the smaller number: {a} or {b}?"),
                1 => format!("Which is smaller, {a} or {b}?"),
                _ => format!("Which number is less: {a} or {b}?"),
            };
            (TextOnly::Smaller { a, b }, q, a.min(b).to_string())
        }
    } else if kind < 85 {
        let n = rng.random_range(0..=999u32);
        let q = match rng.random_range(0..3) {
            0 => format!("What number comes after {n}?"),
            1 => format!("What is one more than {n}?"),
            _ => format!("What number follows {n}?"),
        };
        (TextOnly::After { n }, q, (n + 1).to_string())
    } else if kind < 90 {
        let n = rng.random_range(1..=999u32);
        let q = match rng.random_range(0..3) {
            0 => format!("What number comes before {n}?"),
            1 => format!("What is one less than {n}?"),
            _ => format!("What number is just before {n}?"),
        };
        (TextOnly::Before { n }, q, (n - 1).to_string())
    } else {
        let w = word(rng);
        let q = match rng.random_range(0..3) {
            0 => format!("How many letters are in the word {w}?"),
            1 => format!("How many letters does {w} have?"),
            _ => format!("Count the letters in {w}."),
        };
        let a = w.len().to_string();
        (TextOnly::Letters { word: w }, q, a)
    };
    Sample {
        image: None,
        question: q,
        answer: a,
        task: None,
        bucket: None,
        font: None,
        params: Params::TextOnly(p),
    }
}
