//! Kubernetes resource quantities (`500m`, `2Gi`, `1e3`): parsed to an exact value so that two
//! spellings of one amount compare equal, and written back in one canonical spelling.

use std::fmt;

/// Nano-units per unit: the finest resolution Kubernetes keeps.
const NANO: i128 = 1_000_000_000;

/// An exact, non-negative quantity in nano-units (`1` = 10⁻⁹). Not `PartialEq` on purpose:
/// compare with [`Quantity::same_value`], which ignores the spelling.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    nanos: i128,
    binary: bool,
}

impl Quantity {
    /// Parses the Kubernetes quantity grammar: a decimal number, then a binary suffix
    /// (`Ki`…`Ei`), a decimal suffix (`n`, `u`, `m`, `k`, `M`…`E`) or an exponent (`e3`).
    /// Negative values, more precision than a nano-unit and values beyond 2⁹⁰ are errors.
    pub fn parse(text: &str) -> Result<Quantity, String> {
        let s = text.trim();
        let bad = |why: &str| format!("{text:?} is not a Kubernetes quantity ({why})");
        let unsigned = s.strip_prefix('+').unwrap_or(s);
        if unsigned.starts_with('-') {
            return Err(bad("negative"));
        }
        let number_len = unsigned
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(unsigned.len());
        let (number, suffix) = unsigned.split_at(number_len);
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && frac.is_empty() || frac.contains('.') {
            return Err(bad("expected a number such as 500m, 2Gi or 1.5"));
        }
        let (multiplier, divisor, binary) = match suffix {
            "" => (1, 1, false),
            "n" => (1, NANO, false),
            "u" => (1, 1_000_000, false),
            "m" => (1, 1_000, false),
            "k" => (1_000, 1, false),
            "M" => (1_000_000, 1, false),
            "G" => (1_000_000_000, 1, false),
            "T" => (1_000_000_000_000, 1, false),
            "P" => (1_000_000_000_000_000, 1, false),
            "E" => (1_000_000_000_000_000_000, 1, false),
            "Ki" => (1 << 10, 1, true),
            "Mi" => (1 << 20, 1, true),
            "Gi" => (1 << 30, 1, true),
            "Ti" => (1 << 40, 1, true),
            "Pi" => (1 << 50, 1, true),
            "Ei" => (1 << 60, 1, true),
            exp if exp.starts_with(['e', 'E']) => {
                let e: i32 = exp[1..]
                    .parse()
                    .map_err(|_| bad("unknown suffix; use one of m, k, M, G, Ki, Mi, Gi, …"))?;
                if !(-9..=18).contains(&e) {
                    return Err(bad("exponent out of range"));
                }
                if e >= 0 {
                    (10i128.pow(e as u32), 1, false)
                } else {
                    (1, 10i128.pow((-e) as u32), false)
                }
            }
            _ => return Err(bad("unknown suffix; use one of m, k, M, G, Ki, Mi, Gi, …")),
        };
        if whole.len() + frac.len() > 30 {
            return Err(bad("too many digits"));
        }
        let digits: i128 = format!("{whole}{frac}")
            .parse()
            .map_err(|_| bad("expected a number"))?;
        let scale = 10i128.pow(frac.len() as u32);
        let numerator = digits
            .checked_mul(multiplier)
            .and_then(|v| v.checked_mul(NANO))
            .filter(|v| *v <= 1i128 << 120)
            .ok_or_else(|| bad("too large"))?;
        let denominator = scale * divisor;
        if numerator % denominator != 0 {
            return Err(bad("finer than a nano-unit"));
        }
        Ok(Quantity {
            nanos: numerator / denominator,
            binary,
        })
    }

    /// Whether the value is a whole number (GPUs and other extended resources must be).
    pub(crate) fn is_integer(&self) -> bool {
        self.nanos % NANO == 0
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// Same amount, whatever the spelling.
    pub(crate) fn same_value(&self, other: &Quantity) -> bool {
        self.nanos == other.nanos
    }

    /// A spelling of the value alone (`<nano-units>n`): two quantities have the same key
    /// exactly when they have the same value, whichever suffixes they were written with.
    pub(crate) fn value_key(&self) -> String {
        format!("{}n", self.nanos)
    }
}

/// The canonical spelling, as Kubernetes writes it: binary suffixes for whole byte counts of
/// at least 1Ki given in binary units (`1024Mi` → `1Gi`), otherwise the largest decimal suffix
/// that keeps the number whole (`0.5` → `500m`, `2000m` → `2`).
impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.binary && self.is_integer() && self.nanos >= 1024 * NANO {
            let mut units = self.nanos / NANO;
            let mut suffix = 0;
            while units % 1024 == 0 && suffix < 6 {
                units /= 1024;
                suffix += 1;
            }
            let names = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
            return write!(f, "{units}{}", names[suffix]);
        }
        if self.nanos == 0 {
            return f.write_str("0");
        }
        // Exponent of ten (multiple of 3, from -9) that keeps the mantissa whole.
        let mut mantissa = self.nanos;
        let mut exponent = -9;
        while mantissa % 1000 == 0 && exponent < 18 {
            mantissa /= 1000;
            exponent += 3;
        }
        let suffix = match exponent {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            0 => "",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            _ => "E",
        };
        write!(f, "{mantissa}{suffix}")
    }
}

#[cfg(test)]
mod tests;
