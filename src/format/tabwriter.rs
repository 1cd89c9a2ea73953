//! Go's `text/tabwriter` elastic tabstops, as `ls` uses them
//! (`tabwriter.NewWriter(out, minwidth, tabwidth, padding, ' ', 0)`), so tables match byte for byte,
//! trailing spaces included.

/// Column settings of a tab writer.
#[derive(Debug, Clone, Copy)]
pub struct TabWriter {
    pub min_width: usize,
    pub padding: usize,
}

impl TabWriter {
    /// The settings of docker-machine's `ls`: minwidth 5, padding 3.
    pub const LS: TabWriter = TabWriter {
        min_width: 5,
        padding: 3,
    };

    /// Aligns tab-terminated cells of `text` into columns, block by block as Go does: a column
    /// spans consecutive lines that have a cell in it; a line without tabs ends every block.
    pub fn format(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() * 2);
        let mut block: Vec<Vec<&str>> = Vec::new();
        let mut lines = text.split('\n').peekable();
        while let Some(line) = lines.next() {
            let is_last = lines.peek().is_none();
            if is_last && line.is_empty() {
                break;
            }
            let cells: Vec<&str> = line.split('\t').collect();
            let single = cells.len() == 1;
            block.push(cells);
            if single {
                self.flush(&mut out, &block, !is_last);
                block.clear();
            } else if is_last {
                self.flush(&mut out, &block, false);
                block.clear();
            }
        }
        if !block.is_empty() {
            self.flush(&mut out, &block, true);
        }
        out
    }

    fn flush(&self, out: &mut String, lines: &[Vec<&str>], last_newline: bool) {
        let mut widths = Vec::new();
        self.format_block(out, lines, &mut widths, 0, lines.len());
        if !last_newline && out.ends_with('\n') {
            out.pop();
        }
    }

    fn format_block(
        &self,
        out: &mut String,
        lines: &[Vec<&str>],
        widths: &mut Vec<usize>,
        mut line0: usize,
        line1: usize,
    ) {
        let column = widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= lines[this].len() {
                this += 1;
                continue;
            }
            self.write_lines(out, lines, widths, line0, this);
            line0 = this;
            let mut width = self.min_width;
            while this < line1 && column + 1 < lines[this].len() {
                let w = lines[this][column].chars().count() + self.padding;
                width = width.max(w);
                this += 1;
            }
            widths.push(width);
            self.format_block(out, lines, widths, line0, this);
            widths.pop();
            line0 = this;
        }
        self.write_lines(out, lines, widths, line0, line1);
    }

    fn write_lines(
        &self,
        out: &mut String,
        lines: &[Vec<&str>],
        widths: &[usize],
        line0: usize,
        line1: usize,
    ) {
        for cells in &lines[line0..line1] {
            for (j, cell) in cells.iter().enumerate() {
                out.push_str(cell);
                if j + 1 < cells.len() {
                    let width = widths.get(j).copied().unwrap_or(0);
                    let pad = width.saturating_sub(cell.chars().count());
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_like_go() {
        let text =
            "NAME\tACTIVE\tURL\tERRORS\na\t-\ttcp://1.2.3.4:2376\t\nlonger-name\t*\t\tboom\n";
        let expected = concat!(
            "NAME          ACTIVE   URL                  ERRORS\n",
            "a             -        tcp://1.2.3.4:2376   \n",
            "longer-name   *                             boom\n"
        );
        assert_eq!(TabWriter::LS.format(text), expected);
    }

    #[test]
    fn min_width_applies_to_short_columns() {
        assert_eq!(TabWriter::LS.format("a\tb\n"), "a    b\n");
    }

    #[test]
    fn lines_without_tabs_end_a_block() {
        let text = "aaaaaaaa\tb\nplain\nc\td\n";
        assert_eq!(TabWriter::LS.format(text), "aaaaaaaa   b\nplain\nc    d\n");
    }

    #[test]
    fn text_without_final_newline_is_kept_as_is() {
        assert_eq!(TabWriter::LS.format("a\tb"), "a    b");
    }
}
