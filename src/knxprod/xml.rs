//! A small element tree and its serialisation with `quick-xml`: the generator builds the tree,
//! this writes it (declaration, two-space indentation, escaped attribute values).

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, Event};

use super::KnxprodError;

/// One XML element: name, attributes in order, child elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    name: &'static str,
    attrs: Vec<(&'static str, String)>,
    children: Vec<Node>,
}

impl Node {
    /// An element without attributes or children.
    pub(crate) fn new(name: &'static str) -> Self {
        Self {
            name,
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Adds an attribute.
    #[must_use]
    #[allow(
        clippy::needless_pass_by_value,
        reason = "the builder takes numbers and strings alike, by value"
    )]
    pub(crate) fn attr(mut self, key: &'static str, value: impl ToString) -> Self {
        self.attrs.push((key, value.to_string()));
        self
    }

    /// Adds an attribute when `value` is `Some`.
    #[must_use]
    pub(crate) fn attr_opt(self, key: &'static str, value: Option<impl ToString>) -> Self {
        match value {
            Some(v) => self.attr(key, v),
            None => self,
        }
    }

    /// Adds a child element.
    #[must_use]
    pub(crate) fn child(mut self, child: Node) -> Self {
        self.children.push(child);
        self
    }

    /// Adds child elements.
    #[must_use]
    pub(crate) fn children(mut self, children: impl IntoIterator<Item = Node>) -> Self {
        self.children.extend(children);
        self
    }

    /// Appends a child element.
    pub(crate) fn push(&mut self, child: Node) {
        self.children.push(child);
    }

    /// The document: XML declaration and this element as its root.
    pub(crate) fn to_document(&self) -> Result<String, KnxprodError> {
        let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
        writer
            .write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))
            .map_err(|e| KnxprodError::Xml(e.to_string()))?;
        self.write(&mut writer)?;
        let mut bytes = writer.into_inner();
        bytes.push(b'\n');
        String::from_utf8(bytes).map_err(|e| KnxprodError::Xml(e.to_string()))
    }

    fn write(&self, writer: &mut Writer<Vec<u8>>) -> Result<(), KnxprodError> {
        let start = BytesStart::new(self.name)
            .with_attributes(self.attrs.iter().map(|(k, v)| (*k, v.as_str())));
        let result = if self.children.is_empty() {
            writer.write_event(Event::Empty(start))
        } else {
            writer.write_event(Event::Start(start)).and_then(|()| {
                for child in &self.children {
                    child
                        .write(writer)
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                }
                writer.write_event(Event::End(BytesEnd::new(self.name)))
            })
        };
        result.map_err(|e| KnxprodError::Xml(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_escaped_and_empty_elements_closed() {
        let doc = Node::new("A")
            .attr("Text", "a \"b\" <c> & ü")
            .child(Node::new("B"))
            .to_document()
            .unwrap();
        assert!(doc.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>"));
        assert!(
            doc.contains("Text=\"a &quot;b&quot; &lt;c&gt; &amp; ü\""),
            "{doc}"
        );
        assert!(doc.contains("<B/>"), "{doc}");
        let parsed = roxmltree::Document::parse(&doc).unwrap();
        assert_eq!(
            parsed.root_element().attribute("Text"),
            Some("a \"b\" <c> & ü")
        );
    }
}
