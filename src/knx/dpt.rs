//! KNX datapoint-type codecs.
