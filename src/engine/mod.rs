//! The container engine: what any front end drives. For now only images;
//! the rest moves here with the layout change (issue 11).

pub mod images;
