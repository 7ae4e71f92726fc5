"""The notebook dashboard: ipywidgets panels and Plotly FigureWidgets driven by a Session."""
