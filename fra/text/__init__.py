"""An offline text corpus for language-model SAEs: packaged English prose, verse and Python code."""
