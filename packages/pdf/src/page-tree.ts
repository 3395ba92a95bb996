// The page tree as a viewer reads it: by its leaves, not by the /Count it claims.
import type * as mupdf from "mupdf";

// Attributes a page inherits from its ancestors (ISO 32000-1, 7.7.3.4).
const INHERITABLE = ["Resources", "MediaBox", "CropBox", "Rotate"] as const;

export interface PageTree {
  /** Every leaf in page order: the page dictionaries, or whatever the tree names where one is missing. */
  leaves: mupdf.PDFObject[];
  /** 1-based positions of the leaves that are not dictionaries (objects the file does not hold). */
  missing: number[];
  /** For each leaf, the inheritable attributes it lacks and an ancestor has. */
  inherited: Map<number, Partial<Record<(typeof INHERITABLE)[number], mupdf.PDFObject>>>;
}

interface Frame {
  kids: mupdf.PDFObject;
  next: number;
  length: number;
  attrs: Partial<Record<(typeof INHERITABLE)[number], mupdf.PDFObject>>;
}

function inheritFrom(node: mupdf.PDFObject, outer: Frame["attrs"]): Frame["attrs"] {
  const attrs = { ...outer };
  for (const key of INHERITABLE) {
    const v = node.get(key);
    if (!v.isNull()) attrs[key] = v;
  }
  return attrs;
}

/**
 * Walks the page tree once, in page order. One pass over the Kids arrays, each intermediate node
 * visited at most once, so a cycle or a shared node cannot make it loop; an explicit stack, so a
 * deep tree cannot overflow. The work is bounded by the objects in the file, whatever /Count says.
 * (Asking mupdf page by page is quadratic on a flat tree it failed to load.)
 */
export function walkPageTree(doc: mupdf.PDFDocument): PageTree {
  const tree: PageTree = { leaves: [], missing: [], inherited: new Map() };
  // mupdf.js throws on a path through a missing object (no /Root): no tree to walk.
  let root: mupdf.PDFObject;
  let rootKids: mupdf.PDFObject;
  try {
    root = doc.getTrailer().get("Root", "Pages");
    rootKids = root.get("Kids");
  } catch {
    return tree;
  }
  if (!rootKids.isArray()) return tree;
  const seen = new Set<number>();
  if (root.isIndirect()) seen.add(root.asIndirect());
  const stack: Frame[] = [{ kids: rootKids, next: 0, length: rootKids.length, attrs: inheritFrom(root, {}) }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.next >= top.length) {
      stack.pop();
      continue;
    }
    const kid = top.kids.get(top.next++);
    const kids = kid.isDictionary() ? kid.get("Kids") : undefined;
    if (kids?.isArray() && kid.get("Type").asName() !== "Page") {
      if (kid.isIndirect()) {
        const num = kid.asIndirect();
        if (seen.has(num)) continue;
        seen.add(num);
      }
      stack.push({ kids, next: 0, length: kids.length, attrs: inheritFrom(kid, top.attrs) });
      continue;
    }
    tree.leaves.push(kid);
    if (!kid.isDictionary()) {
      tree.missing.push(tree.leaves.length);
      continue;
    }
    const lacks = Object.fromEntries(
      INHERITABLE.filter((k) => top.attrs[k] && kid.get(k).isNull()).map((k) => [k, top.attrs[k]!]),
    );
    if (Object.keys(lacks).length > 0) tree.inherited.set(tree.leaves.length - 1, lacks);
  }
  return tree;
}

/**
 * The page objects of a document whose tree holds none (a broken or cyclic /Kids chain, pages
 * left out of it): every dictionary of /Type /Page in the file, in object order, as viewers
 * recover them. One pass over the objects of the file.
 */
export function orphanPages(doc: mupdf.PDFDocument): PageTree {
  const tree: PageTree = { leaves: [], missing: [], inherited: new Map() };
  for (let num = 1, n = doc.countObjects(); num < n; num++) {
    try {
      const obj = doc.newIndirect(num);
      const value = obj.resolve();
      if (value.isDictionary() && value.get("Type").asName() === "Page") tree.leaves.push(obj);
    } catch {
      // an object that does not load is not a page we can draw
    }
  }
  return tree;
}

/**
 * Makes the document's page tree say what its leaves say: one flat /Kids array of the leaves,
 * /Count their number, each page carrying the attributes it inherited. mupdf then counts, loads
 * and copies pages by the leaves, as viewers do when /Count lies. In memory only.
 */
export function trustLeaves(doc: mupdf.PDFDocument, tree: PageTree): void {
  const catalog = doc.getTrailer().get("Root");
  let root = catalog.get("Pages");
  // No page tree root, or one that is not a /Pages node (a page standing in for it): a new root.
  if (!root.isDictionary() || root.get("Type").asName() !== "Pages") {
    root = doc.addObject(doc.newDictionary());
    root.put("Type", doc.newName("Pages"));
    catalog.put("Pages", root);
  }
  const kids = doc.newArray();
  tree.leaves.forEach((leaf, i) => {
    if (leaf.isDictionary()) {
      for (const [key, value] of Object.entries(tree.inherited.get(i) ?? {})) leaf.put(key, value);
      leaf.put("Parent", root);
    }
    kids.push(leaf);
  });
  root.put("Kids", kids);
  root.put("Count", tree.leaves.length);
}
