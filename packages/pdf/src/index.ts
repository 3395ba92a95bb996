export { PdfError, type PdfErrorCode } from "./errors.js";
export {
  inspectPdf,
  openPdf,
  setMupdfLog,
  MAX_MUPDF_FILE_BYTES,
  type DocumentLimits,
  type InspectOptions,
  type MupdfLog,
  type PdfInfo,
} from "./open.js";
export type { NativeOptions } from "./native.js";
export {
  splitRange,
  splitChunks,
  splitIntoChunks,
  splitPages,
  type SplitChunk,
  type SplitPiece,
  type SplitOptions,
} from "./split.js";
export {
  renderPage,
  DEFAULT_DPI,
  DEFAULT_MAX_PIXELS,
  DAMAGE,
  damageReason,
  type RenderOptions,
  type RenderResult,
} from "./render.js";
export { fitPixels } from "./pixels.js";
export { DEFAULT_PNG_LEVEL, encodePngPixels, type RawPixels } from "./png.js";
export { PdfPool, RenderPool, type PdfPoolOptions, type RenderPoolOptions, type PoolRenderOptions } from "./pool.js";
export {
  generateCorpus,
  generatePdf,
  generateLargePdf,
  DEFAULT_CORPUS,
  PAGE_SIZES,
  type Corpus,
  type CorpusFile,
  type CorpusFileSpec,
  type CorpusPage,
  type CorpusPageSpec,
  type CorpusSpec,
  type LargePdfOptions,
  type Rotation,
} from "./corpus.js";
export {
  generateHostileCorpus,
  generateStreamBomb,
  HOSTILE_PASSWORD,
  CLAIMED_PAGES,
  type HostileExpectation,
  type HostileFixture,
} from "./hostile.js";
