//! `completion`: print shell completions: commands and flags from the command line's definition,
//! machine names from the store (`ls -q` at completion time), for `hoist` and `docker-machine`.

use clap_complete::Shell;
use hoist::error::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell: bash, zsh, fish, elvish or powershell
    shell: Shell,
}

/// The commands whose arguments are machine names.
fn machine_commands(cmd: &clap::Command) -> Vec<String> {
    cmd.get_subcommands()
        .filter(|sub| {
            sub.get_name() == "ssh" || sub.get_positionals().any(|a| a.get_id() == "names")
        })
        .map(|sub| sub.get_name().to_string())
        .collect()
}

/// What each shell needs beyond clap's script: machine names, and the `docker-machine` name.
fn machine_names(shell: Shell, script: String, commands: &[String]) -> String {
    let list = commands.join(" ");
    match shell {
        Shell::Bash => format!(
            r#"{script}
__hoist_machine_commands=" {list} "
_hoist_with_machines() {{
    _hoist "$@"
    local i word sub="" cur="${{COMP_WORDS[COMP_CWORD]}}"
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${{COMP_WORDS[i]}}
        [[ $word == -* ]] && continue
        sub=$word
        break
    done
    if [[ -n $sub && $cur != -* && $__hoist_machine_commands == *" $sub "* ]]; then
        local kept=() reply
        for reply in "${{COMPREPLY[@]}}"; do
            [[ $reply == [-\[\<]* ]] || kept+=("$reply")
        done
        COMPREPLY=("${{kept[@]}}" $(compgen -W "$("${{COMP_WORDS[0]}}" ls -q 2>/dev/null)" -- "$cur"))
    fi
}}
complete -F _hoist_with_machines -o bashdefault -o default hoist docker-machine
"#
        ),
        Shell::Zsh => {
            let helper = "#compdef hoist docker-machine\n\n_hoist_machines() {\n    local -a machines\n    machines=(${(f)\"$(${words[1]} ls -q 2>/dev/null)\"})\n    _describe 'machine' machines\n}\n";
            script
                .replacen("#compdef hoist\n", helper, 1)
                .replace("'*::names:_default'", "'*::names:_hoist_machines'")
                .replace(
                    "compdef _hoist hoist",
                    "compdef _hoist hoist docker-machine",
                )
        }
        Shell::Fish => format!(
            "{script}complete -c hoist -n \"__fish_seen_subcommand_from {list}\" -f -a \"(hoist ls -q 2>/dev/null)\" -d machine\ncomplete -c docker-machine -w hoist\ncomplete -c hoist -w docker-machine\n"
        ),
        _ => script,
    }
}

pub fn exec(args: Args) -> Result<u8> {
    // create completes the flags of every built-in driver (plugins' are known only at run time).
    let mut cmd = hoist::driver::BUILTIN_DRIVERS
        .iter()
        .fold(super::cli_command(), |cmd, b| {
            super::create::with_driver_flags(cmd, b.name, &(b.flags)())
        });
    let commands = machine_commands(&cmd);
    // One script serves both names; its functions are named after hoist.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "hoist", &mut script);
    let script = String::from_utf8_lossy(&script).into_owned();
    crate::printer::print_text(&machine_names(args.shell, script, &commands))
}
