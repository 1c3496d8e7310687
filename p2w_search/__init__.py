"""p2w-search: composed product image search (Pic2Word) for Django shops."""
