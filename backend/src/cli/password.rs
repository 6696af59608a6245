//! The password of `user add` and `user passwd`: asked for on the terminal, read from stdin, or
//! given by a caller. It never goes on the command line.

/// Where `user add` and `user passwd` get the password from.
pub enum PasswordInput {
    /// A prompt on the terminal, or one line of stdin when it is not a terminal.
    Ask,
    /// Given by the caller (tests, and programs embedding the CLI).
    Given(String),
}

impl PasswordInput {
    pub(super) fn read(self) -> anyhow::Result<String> {
        use std::io::IsTerminal;
        let password = match self {
            Self::Given(p) => p,
            Self::Ask if std::io::stdin().is_terminal() => {
                let first = rpassword::prompt_password("password: ")?;
                let second = rpassword::prompt_password("again: ")?;
                if first != second {
                    anyhow::bail!("the two passwords differ; nothing changed");
                }
                first
            }
            Self::Ask => {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_string()
            }
        };
        Ok(password)
    }
}
