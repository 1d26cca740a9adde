export * from "./ids.js";
export * from "./snapshot.js";
export * from "./move.js";
export * from "./load.js";
export * from "./apply-move.js";
export * from "./imbalance.js";
export * from "./prediction.js";
export * from "./smoothing.js";
