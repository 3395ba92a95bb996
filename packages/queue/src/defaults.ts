/**
 * Defaults that several services share, each given once: a service's options and its
 * environment schema both read it, so a deployment that sets nothing gets what a test or the
 * single-box runner gets. (Rendering's DPI and pixel cap live with the renderer in @docpipe/pdf;
 * the classification thresholds in `defaultThresholds`.)
 */

/** A document with more pages fails as too_many_pages (orchestrator, splitters, failsafe): MAX_PAGES. */
export const DEFAULT_MAX_PAGES = 100_000;

/** Seconds a stopping worker waits for in-flight messages before giving them back; ECS waits 30 s between SIGTERM and SIGKILL. */
export const DEFAULT_STOP_TIMEOUT_SECONDS = 25;
