//! The shells `env` writes for: one table of how each sets and unsets a variable and how it
//! evaluates a command's output.

/// A shell dialect of `env`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    /// sh, bash, zsh and anything unknown: `export NAME="value"`.
    Posix,
    Fish,
    Powershell,
    Cmd,
    Tcsh,
    Emacs,
}

/// How one shell writes assignments: prefix, delimiter, suffix (set and unset mode).
struct Syntax {
    set: (&'static str, &'static str, &'static str),
    unset: (&'static str, &'static str, &'static str),
    comment: &'static str,
}

impl Shell {
    /// The dialect for a shell name (`--shell` or the base name of `$SHELL`); unknown names use
    /// the POSIX form, as docker-machine does.
    pub fn from_name(name: &str) -> Shell {
        match name {
            "fish" => Shell::Fish,
            "powershell" | "pwsh" => Shell::Powershell,
            "cmd" => Shell::Cmd,
            "tcsh" | "csh" => Shell::Tcsh,
            "emacs" => Shell::Emacs,
            _ => Shell::Posix,
        }
    }

    /// The shell from `--shell`, else from `$SHELL`; POSIX when neither is set (docker-machine
    /// fails there).
    pub fn detect(flag: Option<&str>, shell_env: Option<&str>) -> Shell {
        match flag.filter(|s| !s.is_empty()) {
            Some(name) => Shell::from_name(name),
            None => shell_env
                .filter(|s| !s.is_empty())
                .map(|s| Shell::from_name(s.rsplit(['/', '\\']).next().unwrap_or(s)))
                .unwrap_or(Shell::Posix),
        }
    }

    fn syntax(self) -> Syntax {
        match self {
            Shell::Posix => Syntax {
                set: ("export ", "=\"", "\"\n"),
                unset: ("unset ", "", "\n"),
                comment: "#",
            },
            Shell::Fish => Syntax {
                set: ("set -gx ", " \"", "\";\n"),
                unset: ("set -e ", "", ";\n"),
                comment: "#",
            },
            Shell::Powershell => Syntax {
                set: ("$Env:", " = \"", "\"\n"),
                unset: ("Remove-Item Env:\\\\", "", "\n"),
                comment: "#",
            },
            Shell::Cmd => Syntax {
                set: ("SET ", "=", "\n"),
                unset: ("SET ", "=", "\n"),
                comment: "REM",
            },
            Shell::Tcsh => Syntax {
                set: ("setenv ", " \"", "\";\n"),
                unset: ("unsetenv ", "", ";\n"),
                comment: ":",
            },
            Shell::Emacs => Syntax {
                set: ("(setenv \"", "\" \"", "\")\n"),
                unset: ("(setenv \"", "\" nil", ")\n"),
                comment: ";;",
            },
        }
    }

    /// One assignment line, e.g. `export DOCKER_HOST="tcp://1.2.3.4:2376"\n`. The value is
    /// escaped for the shell, so that evaluating the line (`eval $(hoist env web)`) only ever
    /// assigns it: nothing in it is run or expanded. Values without special characters are
    /// written as docker-machine writes them.
    pub fn set(self, name: &str, value: &str) -> String {
        let (prefix, delim, suffix) = self.syntax().set;
        format!("{prefix}{name}{delim}{}{suffix}", self.escape(value))
    }

    /// A value escaped for this shell's assignment (inside its quotes, where it has them).
    fn escape(self, value: &str) -> String {
        let mut out = String::with_capacity(value.len());
        for c in value.chars() {
            match (self, c) {
                (_, '\n' | '\r') => out.push(' '),
                (Shell::Posix, '\\' | '"' | '$' | '`') | (Shell::Fish, '\\' | '"' | '$') => {
                    out.push('\\');
                    out.push(c);
                }
                (Shell::Powershell, '`' | '"' | '$') => {
                    out.push('`');
                    out.push(c);
                }
                (Shell::Cmd, '^' | '&' | '|' | '<' | '>' | '(' | ')') => {
                    out.push('^');
                    out.push(c);
                }
                (Shell::Cmd, '%') => out.push_str("%%"),
                // csh cannot escape `$` or a backquote inside double quotes: close, escape, reopen.
                (Shell::Tcsh, '$' | '`' | '"') => {
                    out.push_str("\"\\");
                    out.push(c);
                    out.push('"');
                }
                (Shell::Tcsh, '!') => out.push_str("\\!"),
                (Shell::Emacs, '\\' | '"') => {
                    out.push('\\');
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
        out
    }

    /// One unset line, e.g. `unset DOCKER_HOST\n`.
    pub fn unset(self, name: &str) -> String {
        let (prefix, delim, suffix) = self.syntax().unset;
        format!("{prefix}{name}{delim}{suffix}")
    }

    /// The closing hint: how to evaluate `command_line` in this shell (two lines).
    pub fn usage_hint(self, command_line: &str) -> String {
        let comment = self.syntax().comment;
        let eval = match self {
            Shell::Posix => format!("eval $({command_line})"),
            Shell::Fish => format!("eval ({command_line})"),
            Shell::Powershell => format!("& {command_line} | Invoke-Expression"),
            Shell::Cmd => format!("\t@FOR /f \"tokens=*\" %i IN ('{command_line}') DO @%i"),
            Shell::Tcsh => format!("eval `{command_line}`"),
            Shell::Emacs => {
                format!(
                    "(with-temp-buffer (shell-command \"{command_line}\" (current-buffer)) (eval-buffer))"
                )
            }
        };
        format!("{comment} Run this command to configure your shell: \n{comment} {eval}\n")
    }
}

/// The command line as docker-machine shows it in hints: arguments joined by spaces, the program
/// quoted when it contains a space or a backslash.
pub fn command_line(argv: &[String]) -> String {
    argv.iter()
        .enumerate()
        .map(|(i, a)| {
            if i == 0 && (a.contains(' ') || a.contains('\\')) {
                format!("\"{a}\"")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shell_sets_and_unsets() {
        let cases = [
            (Shell::Posix, "export A=\"1\"\n", "unset A\n"),
            (Shell::Fish, "set -gx A \"1\";\n", "set -e A;\n"),
            (
                Shell::Powershell,
                "$Env:A = \"1\"\n",
                "Remove-Item Env:\\\\A\n",
            ),
            (Shell::Cmd, "SET A=1\n", "SET A=\n"),
            (Shell::Tcsh, "setenv A \"1\";\n", "unsetenv A;\n"),
            (
                Shell::Emacs,
                "(setenv \"A\" \"1\")\n",
                "(setenv \"A\" nil)\n",
            ),
        ];
        for (shell, set, unset) in cases {
            assert_eq!(shell.set("A", "1"), set, "{shell:?}");
            assert_eq!(shell.unset("A"), unset, "{shell:?}");
        }
    }

    #[test]
    fn values_are_escaped_for_each_shell() {
        let v = "a$(id)`x`\"q\\!%&";
        let cases = [
            (Shell::Posix, "export A=\"a\\$(id)\\`x\\`\\\"q\\\\!%&\"\n"),
            (Shell::Fish, "set -gx A \"a\\$(id)`x`\\\"q\\\\!%&\";\n"),
            (Shell::Powershell, "$Env:A = \"a`$(id)``x```\"q\\!%&\"\n"),
            (Shell::Cmd, "SET A=a$^(id^)`x`\"q\\!%%^&\n"),
            (
                Shell::Tcsh,
                "setenv A \"a\"\\$\"(id)\"\\`\"x\"\\`\"\"\\\"\"q\\\\!%&\";\n",
            ),
            (Shell::Emacs, "(setenv \"A\" \"a$(id)`x`\\\"q\\\\!%&\")\n"),
        ];
        for (shell, expected) in cases {
            assert_eq!(shell.set("A", v), expected, "{shell:?}");
        }
        assert_eq!(Shell::Posix.set("A", "l1\nl2"), "export A=\"l1 l2\"\n");
    }

    #[test]
    fn detection() {
        assert_eq!(Shell::detect(None, Some("/usr/bin/fish")), Shell::Fish);
        assert_eq!(Shell::detect(Some("tcsh"), Some("/bin/fish")), Shell::Tcsh);
        assert_eq!(Shell::detect(None, None), Shell::Posix);
        assert_eq!(Shell::detect(None, Some("")), Shell::Posix);
        assert_eq!(Shell::detect(None, Some("/bin/zsh")), Shell::Posix);
    }

    #[test]
    fn hints() {
        assert_eq!(
            Shell::Posix.usage_hint("docker-machine env dev"),
            "# Run this command to configure your shell: \n# eval $(docker-machine env dev)\n"
        );
        assert_eq!(
            Shell::Cmd.usage_hint("hoist env dev"),
            "REM Run this command to configure your shell: \nREM \t@FOR /f \"tokens=*\" %i IN ('hoist env dev') DO @%i\n"
        );
        assert_eq!(
            command_line(&["/opt/my tools/hoist".into(), "env".into()]),
            "\"/opt/my tools/hoist\" env"
        );
    }
}
