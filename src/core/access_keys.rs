//! CodeArts access keys (AK/SK pairs) and the principals behind them.
