//! `Hardware.xml` (the device, its product and the link to the application program) and
//! `Catalog.xml` (where ETS lists it).

use super::xml::Node;
use super::{HARDWARE_SERIAL, HARDWARE_VERSION, Ids, PRODUCT_NAME, german, knx_root};
use crate::etsdb::ParamModel;

/// The product name in German.
const PRODUCT_NAME_DE: &str = "knx-echarge Gateway für 5 Ladepunkte";

/// `Hardware.xml`.
pub(super) fn hardware(ids: &Ids) -> Node {
    let hardware = Node::new("Hardware")
        .attr("Id", &ids.hardware)
        .attr("Name", PRODUCT_NAME)
        .attr("SerialNumber", HARDWARE_SERIAL)
        .attr("VersionNumber", HARDWARE_VERSION)
        // Spec ch. 4, technical data: current consumption typ. 6 mA.
        .attr("BusCurrent", 6)
        .attr("HasIndividualAddress", "true")
        .attr("HasApplicationProgram", "true")
        .child(
            Node::new("Products").child(
                Node::new("Product")
                    .attr("Id", &ids.product)
                    .attr("Text", PRODUCT_NAME)
                    .attr("OrderNumber", &ParamModel::get().application.order_number)
                    .attr("IsRailMounted", "true")
                    // Spec ch. 4: installation width 36 mm (2 HP).
                    .attr("WidthInMillimeter", 36)
                    .attr("DefaultLanguage", "en-US"),
            ),
        )
        .child(
            Node::new("Hardware2Programs").child(
                Node::new("Hardware2Program")
                    .attr("Id", &ids.hardware2program)
                    .attr("MediumTypes", "MT-0")
                    .child(Node::new("ApplicationProgramRef").attr("RefId", &ids.application)),
            ),
        );
    let texts = vec![(ids.product.clone(), "Text", PRODUCT_NAME_DE.to_owned())];
    knx_root(
        ids,
        vec![
            Node::new("Hardware").child(hardware),
            german(&ids.hardware, &texts),
        ],
    )
}

/// `Catalog.xml`.
pub(super) fn catalog(ids: &Ids) -> Node {
    let section = Node::new("CatalogSection")
        .attr("Id", &ids.catalog_section)
        .attr("Name", "Electric vehicle charging")
        .attr("Number", 1)
        .attr("DefaultLanguage", "en-US")
        .child(
            Node::new("CatalogItem")
                .attr("Id", &ids.catalog_item)
                .attr("Name", PRODUCT_NAME)
                .attr("Number", 1)
                .attr("ProductRefId", &ids.product)
                .attr("Hardware2ProgramRefId", &ids.hardware2program)
                .attr("DefaultLanguage", "en-US"),
        );
    let texts = vec![
        (
            ids.catalog_section.clone(),
            "Name",
            "Ladeinfrastruktur Elektrofahrzeuge".to_owned(),
        ),
        (ids.catalog_item.clone(), "Name", PRODUCT_NAME_DE.to_owned()),
    ];
    knx_root(
        ids,
        vec![
            Node::new("Catalog").child(section),
            german(&ids.catalog_section, &texts),
        ],
    )
}
