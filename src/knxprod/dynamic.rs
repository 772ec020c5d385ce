//! Conditions as ETS writes them: a boolean formula over parameter values ([`Formula`]) and
//! its translation into nested `choose ParamRefId` / `when test` elements, where exactly the
//! `then` part appears when the formula holds and the `else` part when it does not.

use super::xml::Node;

/// A condition over parameter values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Formula {
    /// Always.
    True,
    /// Never.
    False,
    /// The parameter (by ParameterRef id) has one of `values` (raw memory values), or none of
    /// them when `negate`.
    Test {
        /// ParameterRef id.
        param: String,
        /// Raw values.
        values: Vec<i64>,
        /// Not one of them.
        negate: bool,
    },
    /// All hold.
    And(Vec<Formula>),
    /// At least one holds.
    Or(Vec<Formula>),
}

impl Formula {
    /// The parameter has one of `values`.
    pub(crate) fn is(param: &str, values: Vec<i64>) -> Self {
        if values.is_empty() {
            return Self::False;
        }
        Self::Test {
            param: param.to_owned(),
            values,
            negate: false,
        }
    }

    /// The parameter has none of `values`.
    pub(crate) fn is_not(param: &str, values: Vec<i64>) -> Self {
        if values.is_empty() {
            return Self::True;
        }
        Self::Test {
            param: param.to_owned(),
            values,
            negate: true,
        }
    }

    /// Whether the formula holds for `value_of` (the tests compare it with the emitted choices).
    #[cfg(test)]
    pub(crate) fn holds(&self, value_of: &impl Fn(&str) -> Option<i64>) -> bool {
        match self {
            Self::True => true,
            Self::False => false,
            Self::Test {
                param,
                values,
                negate,
            } => value_of(param).is_some_and(|v| values.contains(&v)) != *negate,
            Self::And(fs) => fs.iter().all(|f| f.holds(value_of)),
            Self::Or(fs) => fs.iter().any(|f| f.holds(value_of)),
        }
    }

    /// The elements that show `then` when the formula holds and `els` when it does not.
    pub(crate) fn emit(&self, then: Vec<Node>, els: Vec<Node>) -> Vec<Node> {
        if then.is_empty() && els.is_empty() {
            return Vec::new();
        }
        match self {
            Self::True => then,
            Self::False => els,
            Self::Test {
                param,
                values,
                negate,
            } => {
                let (matched, other) = if *negate { (els, then) } else { (then, els) };
                let test = values
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut choose = Node::new("choose").attr("ParamRefId", param);
                // With `negate`, the values must still be caught so that the default does
                // not apply to them, even when nothing shows for them.
                if !matched.is_empty() || !other.is_empty() {
                    choose.push(Node::new("when").attr("test", test).children(matched));
                }
                if !other.is_empty() {
                    choose.push(Node::new("when").attr("default", "true").children(other));
                }
                vec![choose]
            }
            Self::And(fs) => match fs.split_first() {
                None => then,
                Some((first, rest)) => {
                    let inner = Self::And(rest.to_vec()).emit(then, els.clone());
                    first.emit(inner, els)
                }
            },
            Self::Or(fs) => match fs.split_first() {
                None => els,
                Some((first, rest)) => {
                    let inner = Self::Or(rest.to_vec()).emit(then.clone(), els);
                    first.emit(then, inner)
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf() -> Vec<Node> {
        vec![Node::new("ComObjectRefRef").attr("RefId", "X")]
    }

    /// Whether a leaf under `n` is visible, read the way ETS reads choices: a `when` whose
    /// test lists the value wins, else the `default` one.
    fn walk(n: roxmltree::Node<'_, '_>, v: &dyn Fn(&str) -> Option<i64>) -> bool {
        n.children()
            .filter(roxmltree::Node::is_element)
            .any(|c| match c.tag_name().name() {
                "ComObjectRefRef" => true,
                "choose" => {
                    let value = v(c.attribute("ParamRefId").unwrap());
                    let whens: Vec<_> = c.children().filter(roxmltree::Node::is_element).collect();
                    let hit = whens.iter().find(|w| {
                        w.attribute("test").is_some_and(|t| {
                            t.split(' ')
                                .any(|x| Some(x.parse::<i64>().unwrap()) == value)
                        })
                    });
                    let hit = hit.or_else(|| {
                        whens
                            .iter()
                            .find(|w| w.attribute("default") == Some("true"))
                    });
                    hit.is_some_and(|w| walk(*w, v))
                }
                _ => false,
            })
    }

    /// Whether the leaf is visible among the emitted elements.
    fn visible(nodes: &[Node], value_of: &impl Fn(&str) -> Option<i64>) -> bool {
        let doc = Node::new("R")
            .children(nodes.to_vec())
            .to_document()
            .unwrap();
        let parsed = roxmltree::Document::parse(&doc).unwrap();
        walk(parsed.root_element(), value_of)
    }

    #[test]
    fn emitted_choices_show_the_leaf_exactly_when_the_formula_holds() {
        let f = Formula::And(vec![
            Formula::is("a", vec![1]),
            Formula::Or(vec![
                Formula::is("b", vec![2, 3]),
                Formula::And(vec![
                    Formula::is("c", vec![1]),
                    Formula::is_not("d", vec![0]),
                ]),
            ]),
        ]);
        let nodes = f.emit(leaf(), Vec::new());
        for a in 0..2 {
            for b in 0..4 {
                for c in 0..2 {
                    for d in 0..2 {
                        let value_of = |p: &str| {
                            Some(match p {
                                "a" => a,
                                "b" => b,
                                "c" => c,
                                _ => d,
                            })
                        };
                        assert_eq!(
                            visible(&nodes, &value_of),
                            f.holds(&value_of),
                            "a={a} b={b} c={c} d={d}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn trivial_formulas_need_no_choice() {
        assert_eq!(Formula::True.emit(leaf(), Vec::new()), leaf());
        assert!(Formula::False.emit(leaf(), Vec::new()).is_empty());
        assert_eq!(Formula::is("a", Vec::new()), Formula::False);
        assert_eq!(Formula::is_not("a", Vec::new()), Formula::True);
    }
}
