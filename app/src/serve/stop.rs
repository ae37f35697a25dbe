//! Stop strings over streamed text: hold back any tail that could be the start of a stop
//! string, cut at the first full match and never emit the stop string itself.

#[derive(Debug, Default)]
pub struct StopFilter {
    stops: Vec<String>,
    pending: String,
    stopped: bool,
}

impl StopFilter {
    pub fn new(stops: Vec<String>) -> Self {
        StopFilter {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            ..Default::default()
        }
    }

    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Takes the next piece of generated text; returns what may be shown now.
    pub fn push(&mut self, piece: &str) -> String {
        if self.stopped {
            return String::new();
        }
        self.pending.push_str(piece);
        let first_match = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(at) = first_match {
            self.stopped = true;
            let out = self.pending[..at].to_string();
            self.pending.clear();
            return out;
        }
        let hold = self.held_back_len();
        let cut = self.pending.len() - hold;
        let out = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        out
    }

    /// Generation ended without a stop string: the held-back tail is ordinary text.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// Length of the longest tail of `pending` that is a proper prefix of a stop string.
    fn held_back_len(&self) -> usize {
        let p = &self.pending;
        let mut best = 0;
        for s in &self.stops {
            let longest = s.len().saturating_sub(1).min(p.len());
            for k in (best + 1..=longest).rev() {
                let start = p.len() - k;
                if p.is_char_boundary(start) && s.starts_with(&p[start..]) {
                    best = k;
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (Vec<String>, bool, String) {
        let mut f = StopFilter::new(stops.iter().map(|s| s.to_string()).collect());
        let out: Vec<String> = pieces.iter().map(|p| f.push(p)).collect();
        let stopped = f.stopped();
        let rest = f.finish();
        (out, stopped, rest)
    }

    #[test]
    fn stop_split_over_pieces_is_cut_and_trimmed() {
        let (out, stopped, rest) = run(&["END"], &["hello E", "N", "D more"]);
        assert_eq!(out, ["hello ", "", ""]);
        assert!(stopped);
        assert_eq!(rest, "");
    }

    #[test]
    fn false_start_is_released() {
        let (out, stopped, rest) = run(&["END"], &["a E", "Nx", "b"]);
        assert_eq!(out.concat(), "a ENxb");
        assert!(!stopped);
        assert_eq!(rest, "");
        let (out, stopped, rest) = run(&["END"], &["a EN"]);
        assert_eq!(
            (out.concat(), stopped, rest.as_str()),
            ("a ".into(), false, "EN")
        );
    }

    #[test]
    fn earliest_of_several_stops_wins_and_unicode_is_safe() {
        let (out, stopped, _) = run(&["é!", "xyz"], &["ab xyz é!"]);
        assert_eq!(out.concat(), "ab ");
        assert!(stopped);
        let (out, _, rest) = run(&["éa"], &["zé"]);
        assert_eq!((out.concat(), rest.as_str()), ("z".into(), "é"));
        let (out, stopped, rest) = run(&[], &["plain"]);
        assert_eq!(
            (out.concat(), stopped, rest.as_str()),
            ("plain".into(), false, "")
        );
    }
}
