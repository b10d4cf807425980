import pkg from "../package.json" with { type: "json" };

declare const ZRB_BUILD_VERSION: string | undefined;

/** "0.1.0+abc1234" in a compiled binary (baked in by build.ts), "0.1.0-dev" when run from source. */
export const VERSION: string = typeof ZRB_BUILD_VERSION === "string" ? ZRB_BUILD_VERSION : `${pkg.version}-dev`;
